//! `report.md`: the human-readable report of one run.

use std::fmt::{self, Write as _};

use simulator::outcome::{CheckKind, Outcome, Percentiles};

use super::{CONNECTED_SVG, QUEUE_SVG, SYNC_SVG, TWIN_SVG, mib, speed};

/// The whole report; `repro` is the command that reproduces the run.
pub(super) fn render(o: &Outcome, repro: &str) -> Result<String, fmt::Error> {
    let mut out = String::new();
    writeln!(out, "# {} — seed {}\n", cell(&o.scenario), o.seed)?;
    let verdict = if o.passed { "PASS" } else { "FAIL" };
    writeln!(out, "**{verdict}** (exit code {})\n", o.exit_code())?;
    summary(&mut out, o)?;
    real(&mut out, o)?;
    if let Some(crash) = &o.crash {
        writeln!(out, "## Crash\n")?;
        code_block(&mut out, "text", crash)?;
    }
    checks(&mut out, o)?;
    metrics(&mut out, o)?;
    devices(&mut out, o)?;
    faults(&mut out, o)?;
    settings(&mut out, o)?;
    writeln!(out, "## Plots\n")?;
    writeln!(out, "![Connected nodes]({CONNECTED_SVG})\n")?;
    writeln!(out, "![Sync latency]({SYNC_SVG})\n")?;
    writeln!(out, "![Hub queue depth]({QUEUE_SVG})\n")?;
    if o.metrics.devices.is_some() {
        writeln!(out, "![Twin reports]({TWIN_SVG})\n")?;
    }
    writeln!(out, "## Reproduce\n")?;
    code_block(&mut out, "sh", repro)?;
    Ok(out)
}

fn summary(out: &mut String, o: &Outcome) -> fmt::Result {
    writeln!(out, "## Summary\n")?;
    writeln!(out, "| | |\n|---|---|")?;
    writeln!(out, "| Nodes | {} |", o.nodes)?;
    writeln!(out, "| Pods | {} |", o.pods)?;
    writeln!(out, "| Simulated time | {:.1} s |", o.sim_seconds)?;
    writeln!(out, "| Wall time | {:.2} s |", o.wall_seconds)?;
    let speed = speed(o).map_or_else(|| "n/a".to_owned(), |s| format!("{s:.1}× real time"));
    writeln!(out, "| Speed | {speed} |")?;
    writeln!(out, "| Peak RSS | {:.1} MiB |", mib(o.peak_rss_bytes))?;
    writeln!(out, "| Events | {} |", o.events)?;
    writeln!(out, "| Digest | `{}` |\n", cell(&o.digest))
}

/// Real mode: what the processes cost (peak RSS above is cloudcore's).
fn real(out: &mut String, o: &Outcome) -> fmt::Result {
    let Some(r) = &o.real else {
        return Ok(());
    };
    writeln!(out, "## Cost (real mode)\n")?;
    writeln!(out, "| | |\n|---|--:|")?;
    writeln!(out, "| cloudcore CPU | {:.1} s |", r.cloudcore_cpu_seconds)?;
    let per_hour = r.cloudcore_cpu_seconds_per_node_hour;
    writeln!(out, "| cloudcore CPU per node-hour | {per_hour:.3} s |")?;
    writeln!(
        out,
        "| cloudcore peak RSS | {:.1} MiB |",
        mib(r.cloudcore_peak_rss_bytes)
    )?;
    let per_node = r.cloudcore_rss_per_node_bytes / 1024.0;
    writeln!(out, "| cloudcore RSS per node | {per_node:.1} KiB |")?;
    let api = r.api_requests_per_node_minute;
    writeln!(out, "| API requests per node-minute | {api:.2} |")?;
    writeln!(out, "| cloudcore restarts | {} |", r.cloudcore_restarts)?;
    writeln!(out, "| edgemark processes | {} |", r.edgemark_processes)?;
    if r.cloudcore_threads > 0 {
        writeln!(
            out,
            "| worker threads (cloudcore / each edgemark) | {} / {} |",
            r.cloudcore_threads, r.edgemark_threads
        )?;
    }
    writeln!(
        out,
        "| edgemark peak RSS (sum) | {:.1} MiB |",
        mib(r.edgemark_peak_rss_bytes)
    )?;
    writeln!(
        out,
        "| edgemark CPU (sum) | {:.1} s |\n",
        r.edgemark_cpu_seconds
    )
}

fn checks(out: &mut String, o: &Outcome) -> fmt::Result {
    writeln!(out, "## Checks\n")?;
    if o.checks.is_empty() {
        return writeln!(out, "None.\n");
    }
    writeln!(out, "| Check | Kind | Passed | Detail |\n|---|---|:-:|---|")?;
    for c in &o.checks {
        let kind = match c.kind {
            CheckKind::Liveness => "liveness",
            CheckKind::Safety => "safety",
        };
        let mark = if c.passed { "✓" } else { "✗" };
        writeln!(
            out,
            "| `{}` | {kind} | {mark} | {} |",
            cell(&c.name),
            cell(&c.detail)
        )?;
    }
    writeln!(out)
}

fn metrics(out: &mut String, o: &Outcome) -> fmt::Result {
    let m = &o.metrics;
    writeln!(out, "## Metrics\n\n### Latency (ms)\n")?;
    writeln!(out, "| Distribution | Count | p50 | p90 | p99 | Max |")?;
    writeln!(out, "|---|--:|--:|--:|--:|--:|")?;
    latency_row(out, "sync (API write → stored at edge)", &m.sync_latency_ms)?;
    latency_row(out, "ack (cloud send → edge ACK)", &m.ack_latency_ms)?;
    latency_row(out, "reconnect (lost → connected)", &m.reconnect_ms)?;
    writeln!(out, "\n### Traffic per node\n")?;
    writeln!(out, "| Direction | Messages | Bytes |\n|---|--:|--:|")?;
    let (md, bd) = (m.messages_down_per_node, m.bytes_down_per_node);
    writeln!(out, "| cloud → edge | {md:.1} | {bd:.0} |")?;
    let (mu, bu) = (m.messages_up_per_node, m.bytes_up_per_node);
    writeln!(out, "| edge → cloud | {mu:.1} | {bu:.0} |\n")?;
    writeln!(out, "### API requests\n")?;
    if m.api_requests.is_empty() {
        writeln!(out, "None.\n")?;
    } else {
        writeln!(out, "| Verb | Requests |\n|---|--:|")?;
        for (verb, n) in &m.api_requests {
            writeln!(out, "| {} | {n} |", cell(verb))?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "### Hub queue\n\nPeak depth: {} messages.\n",
        m.hub_queue_peak
    )
}

/// Devices: twin reports end to end and desired values down.
fn devices(out: &mut String, o: &Outcome) -> fmt::Result {
    let Some(d) = &o.metrics.devices else {
        return Ok(());
    };
    writeln!(out, "## Devices\n")?;
    writeln!(out, "| | |\n|---|--:|")?;
    writeln!(out, "| Devices | {} |", d.devices)?;
    writeln!(out, "| Mapper reports published | {} |", d.mapper_reports)?;
    writeln!(
        out,
        "| … accepted by DeviceTwin | {} |",
        d.mapper_reports_accepted
    )?;
    writeln!(
        out,
        "| … refused by DeviceTwin | {} |",
        d.mapper_reports_refused
    )?;
    writeln!(
        out,
        "| Reports confirmed by the cloud | {} |",
        d.reports_confirmed
    )?;
    writeln!(out, "| DeviceStatus writes | {} |", d.status_writes)?;
    writeln!(out, "| Desired values written | {} |", d.desired_writes)?;
    let (s, sp) = (d.confirmed_per_sim_s, d.confirmed_per_sim_s_peak);
    writeln!(
        out,
        "| Confirmed per simulated second (mean / peak) | {s:.0} / {sp:.0} |"
    )?;
    let (w, wp) = (d.confirmed_per_wall_s, d.confirmed_per_wall_s_peak);
    writeln!(
        out,
        "| Confirmed per wall second (mean / peak 10 s) | {w:.0} / {wp:.0} |"
    )?;
    if let Some(us) = d.cloudcore_cpu_us_per_report {
        let per_core = if us > 0.0 { 1e6 / us } else { 0.0 };
        writeln!(
            out,
            "| cloudcore CPU per confirmed report (steady state) | {us:.0} µs (≈ {per_core:.0} reports/s per core) |"
        )?;
    }
    if let Some(r) = d.drain_per_wall_s_peak {
        writeln!(
            out,
            "| Confirmed per wall second after the mappers stopped (backlog draining, best 10 s) | {r:.0} |"
        )?;
    }
    writeln!(out, "| Bus publications dropped | {} |\n", d.bus_dropped)?;
    writeln!(out, "| Distribution (ms) | Count | p50 | p90 | p99 | Max |")?;
    writeln!(out, "|---|--:|--:|--:|--:|--:|")?;
    latency_row(
        out,
        "desired → device (API write → mapper applied)",
        &d.desired_to_device_ms,
    )?;
    latency_row(
        out,
        "report → DeviceStatus (mapper read → API)",
        &d.report_to_status_ms,
    )?;
    writeln!(out)
}

fn latency_row(out: &mut String, name: &str, p: &Percentiles) -> fmt::Result {
    writeln!(
        out,
        "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        p.count, p.p50, p.p90, p.p99, p.max
    )
}

fn faults(out: &mut String, o: &Outcome) -> fmt::Result {
    writeln!(out, "## Faults\n")?;
    if o.metrics.faults.is_empty() {
        return writeln!(out, "None.\n");
    }
    for (t, fault) in &o.metrics.faults {
        writeln!(out, "- {t:.1} s: {}", cell(fault))?;
    }
    writeln!(out)
}

fn settings(out: &mut String, o: &Outcome) -> fmt::Result {
    writeln!(out, "## Settings\n")?;
    if o.settings.is_empty() {
        return writeln!(out, "None.\n");
    }
    writeln!(out, "| Setting | Value |\n|---|---|")?;
    for (k, v) in &o.settings {
        writeln!(out, "| `{}` | {} |", cell(k), cell(v))?;
    }
    writeln!(out)
}

/// `text` in a fenced block whose fence is longer than any backtick run inside it.
fn code_block(out: &mut String, lang: &str, text: &str) -> fmt::Result {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    writeln!(out, "{fence}{lang}\n{}\n{fence}\n", text.trim_end())
}

/// `s` made safe for one table cell (or list item): no pipes, no line breaks, no HTML tags.
fn cell(s: &str) -> String {
    s.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}
