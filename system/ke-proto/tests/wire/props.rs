//! Property tests: lossless round trips, a decoder that never panics, and the size limit.

use ke_proto::{
    Content, DecodeError, Group, Header, Limits, Malformation, Message, Operation, ResourcePath,
    ResourceType, Route, Source, decode, decode_with, encode, encode_into, encode_with,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// A known variant or a canonical `Other` (including the empty name).
fn name<T: Clone + std::fmt::Debug + From<String> + 'static>(
    known: &'static [T],
) -> BoxedStrategy<T> {
    prop_oneof![
        proptest::sample::select(known),
        "[a-zA-Z_./-]{0,12}".prop_map(T::from),
    ]
    .boxed()
}

/// Arbitrary JSON, with floats that print and parse exactly (serde_json's default float
/// parser is not guaranteed to round-trip every f64).
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(|i| Value::from(f64::from(i) / 4.0)),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn header() -> impl Strategy<Value = Header> {
    (
        "\\PC{0,36}",
        "\\PC{0,36}",
        any::<i64>(),
        "[0-9]{0,8}",
        any::<bool>(),
        "[a-z]{0,10}",
    )
        .prop_map(
            |(id, parent_id, timestamp, resource_version, sync, message_type)| Header {
                id,
                parent_id,
                timestamp,
                resource_version,
                sync,
                message_type,
            },
        )
}

fn route() -> impl Strategy<Value = Route> {
    let names = (
        name(Source::KNOWN),
        name(Group::KNOWN),
        name(Operation::KNOWN),
    );
    (names, "\\PC{0,10}", "\\PC{0,40}").prop_map(
        |((source, group, operation), destination, resource)| Route {
            source,
            destination,
            group,
            operation,
            resource,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    (header(), route(), json()).prop_map(|(header, route, v)| Message {
        header,
        route,
        content: Content::new(v),
    })
}

/// Resource-path-like strings: a few segments from a small alphabet, empty segments included.
fn resource_string() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just(String::new()),
        Just("null".to_owned()),
        Just("node".to_owned()),
        Just("device".to_owned()),
        Just("rule".to_owned()),
        proptest::sample::select(ResourceType::KNOWN).prop_map(|k| k.as_str().to_owned()),
        "[a-z0-9.-]{1,6}",
    ];
    prop::collection::vec(seg, 1..7).prop_map(|segs| segs.join("/"))
}

/// One edit of a frame: overwrite, insert or delete a byte, or truncate.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let special = prop_oneof![
        proptest::sample::select(b"{}[]\",:\\0123456789eE+-.ntfu \x00\xff".to_vec()),
        any::<u8>()
    ];
    prop_oneof![
        (any::<usize>(), special.clone()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), special).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(frame: &mut Vec<u8>, e: &Edit) {
    let n = frame.len().max(1);
    match *e {
        Edit::Set(i, b) if !frame.is_empty() => frame[i % n] = b,
        Edit::Insert(i, b) => frame.insert(i % (frame.len() + 1), b),
        Edit::Remove(i) if !frame.is_empty() => {
            frame.remove(i % n);
        }
        Edit::Truncate(i) => frame.truncate(i % n),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Goal: encode then decode is the identity on canonical messages. Method: arbitrary
    /// headers, routes (known and unknown names) and JSON content; also via `encode_into`.
    #[test]
    fn message_round_trip(msg in message()) {
        let frame = encode(&msg);
        prop_assert_eq!(decode(&frame).expect("own frames decode"), msg.clone());
        let mut buf = b"junk".to_vec();
        buf.clear();
        encode_into(&msg, &mut buf);
        prop_assert_eq!(buf, frame);
    }

    /// Goal: the string enums are lossless. Method: any string maps to an enum value whose
    /// spelling is the string, and serde agrees with `as_str`.
    #[test]
    fn names_round_trip(s in "\\PC{0,20}") {
        prop_assert_eq!(Operation::from(s.as_str()).to_string(), s.clone());
        prop_assert_eq!(Source::from(s.clone()).to_string(), s.clone());
        prop_assert_eq!(Group::from(s.as_str()).to_string(), s.clone());
        let t: ResourceType = s.parse().expect("infallible");
        let json = serde_json::to_string(&t).expect("serialises");
        prop_assert_eq!(serde_json::from_str::<ResourceType>(&json).expect("parses"), t);
    }

    /// Goal: resource parsing is lossless and canonical. Method: parse, format, compare; parse
    /// the formatted text again and get the same value.
    #[test]
    fn resource_path_round_trip(s in resource_string()) {
        let p = ResourcePath::parse(&s);
        prop_assert_eq!(p.to_string(), s.clone());
        prop_assert_eq!(ResourcePath::parse(&p.to_string()), p);
    }

    /// Goal: decode never panics on arbitrary bytes. Method: random byte strings.
    #[test]
    fn decode_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    /// Goal: decode never panics on near-valid frames. Method: apply up to 8 random edits
    /// (JSON punctuation favoured) to a golden or a generated frame.
    #[test]
    fn decode_mutated_frames(
        which in 0..7usize,
        msg in message(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let mut frame = match crate::golden::ALL.get(which) {
            Some(golden) => golden.as_bytes().to_vec(),
            None => encode(&msg),
        };
        for e in &edits {
            apply(&mut frame, e);
        }
        if let Ok(decoded) = decode(&frame) {
            // Whatever decodes must re-encode (floats may shift by an ulp, so no equality).
            prop_assert!(decode(&encode(&decoded)).is_ok());
        }
    }
}

/// Goal: frames over the limit are refused before parsing, with the lengths in the error, and
/// `encode_with` refuses to produce them. Method: a small limit; the default limit + 1 byte.
#[test]
fn too_large() {
    let frame = encode(&Message::default());
    let limits = Limits {
        frame_bytes_max: frame.len() - 1,
    };
    match decode_with(&frame, &limits) {
        Err(DecodeError::TooLarge { len, max }) => {
            assert_eq!((len, max), (frame.len(), frame.len() - 1))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(encode_with(&Message::default(), &limits).is_err());
    assert!(
        decode_with(
            &frame,
            &Limits {
                frame_bytes_max: frame.len()
            }
        )
        .is_ok()
    );

    let max = Limits::default().frame_bytes_max;
    let huge = vec![b' '; max + 1];
    assert!(matches!(decode(&huge), Err(DecodeError::TooLarge { len, .. }) if len == max + 1));
}

/// Goal: each malformation maps to its typed error, and deep nesting is an error, not a stack
/// overflow. Method: hand-picked bad frames.
#[test]
fn malformed_kinds() {
    assert!(matches!(
        decode(b""),
        Err(DecodeError::Truncated { len: 0 })
    ));
    assert!(matches!(
        decode(b"{\"header\":{"),
        Err(DecodeError::Truncated { .. })
    ));
    let syntax = |f: &[u8]| {
        matches!(
            decode(f),
            Err(DecodeError::Malformed {
                kind: Malformation::Syntax,
                ..
            })
        )
    };
    let schema = |f: &[u8]| {
        matches!(
            decode(f),
            Err(DecodeError::Malformed {
                kind: Malformation::Schema,
                ..
            })
        )
    };
    assert!(syntax(b"{]"));
    assert!(syntax(b"{} trailing"));
    assert!(syntax(b"{\"content\":\"\xff\"}"));
    assert!(schema(b"[]"));
    assert!(schema(b"null"));
    assert!(schema(b"{\"header\":[\"id\"]}"));
    assert!(schema(b"{\"route\":\"r\"}"));
    assert!(schema(b"{\"header\":{\"timestamp\":\"12\"}}"));
    assert!(schema(b"{\"header\":{\"timestamp\":1.5}}"));
    assert!(schema(b"{\"route\":{\"operation\":7}}"));
    let deep = format!(
        "{{\"content\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(syntax(deep.as_bytes()));
}
