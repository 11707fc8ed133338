//! Topic names and filters (MQTT 3.1.1 §4.7). rumqttc's `matches` never matches a `$` topic
//! (the same rule as rumqttd's), so the broker matches with its own: a `$` topic is matched by
//! a filter that names its first level, never by one that starts with `+` or `#`.

/// True if `topic` is a valid topic name for a PUBLISH: not empty, no wildcard, no NUL.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && rumqttc::valid_topic(topic) && !topic.contains('\0')
}

/// True if `filter` is a valid topic filter: not empty, `#` only as the whole last level, `+`
/// only as a whole level, no NUL. `$`-prefixed filters are valid.
pub fn valid_filter(filter: &str) -> bool {
    rumqttc::valid_filter(filter) && !filter.contains('\0')
}

/// True if `topic` (a valid topic name) matches `filter` (a valid filter).
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            // `a/#` also matches `a` (§4.7.1.2): the parent level needs no further level.
            return true;
        }
        match levels.next() {
            Some(level) if f == "+" || f == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the §4.7 matching rules, `$` topics included. Method: a table.
    #[test]
    fn filters_match_per_the_spec() {
        let cases = [
            (
                "$hw/events/device/default/d1/twin/update/delta",
                "$hw/#",
                true,
            ),
            (
                "$hw/events/device/default/d1/twin/update/delta",
                "$hw/events/device/+/+/twin/update/delta",
                true,
            ),
            (
                "$hw/events/device/default/d1/twin/update",
                "$hw/events/device/+/+/twin/+",
                true,
            ),
            (
                "$hw/events/device/default/d1/twin/update/result",
                "$hw/events/device/+/+/twin/+",
                false,
            ),
            ("$hw/events/device/default/d1", "#", false),
            ("$hw/events/device/default/d1", "+/events/#", false),
            ("$SYS/x", "$SYS/+", true),
            ("a/b/c", "#", true),
            ("a/b/c", "a/+/c", true),
            ("a/b/c", "a/+", false),
            ("a/b", "a/b/c", false),
            ("a", "a/#", true),
            ("a/b", "a/#", true),
            ("/a", "+/a", true),
            ("/a", "#", true),
            ("a/", "a/+", true),
            ("sport", "sport/+", false),
            ("ab", "a", false),
        ];
        for (topic, filter, want) in cases {
            assert_eq!(matches(topic, filter), want, "{topic} vs {filter}");
        }
    }

    /// Goal: invalid names and filters are refused, `$` ones allowed. Method: a table.
    #[test]
    fn names_and_filters_are_validated() {
        for ok in ["$hw/#", "a/+/b", "#", "+", "$SYS/+/x", "a//b"] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "++", "a\0b"] {
            assert!(!valid_filter(bad), "{bad:?}");
        }
        assert!(valid_topic("$hw/events/device/default/d1/twin/update"));
        for bad in ["", "a/+", "a/#", "a\0"] {
            assert!(!valid_topic(bad), "{bad:?}");
        }
    }
}
