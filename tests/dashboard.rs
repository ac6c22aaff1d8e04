//! The Grafana dashboard in `deploy/grafana/dashboards/` queries only series the server
//! exports: every metric name in its PromQL (panels and template variables) is in a scrape of
//! `/metrics` taken from the internal address during a call. And it shows what an operator
//! needs (rooms, participants, packets and bytes, loss, PLIs, join latency, CPU, memory).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::{camera_and_microphone, join, server_with, wait_for_flowing_tracks};
use serde_json::Value;
use switchyard::Config;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/dashboards/switchyard.json"
);

/// What the dashboard must show, by the series it reads.
const REQUIRED: [&str; 13] = [
    "switchyard_rooms",
    "switchyard_participants",
    "switchyard_rtp_packets_in_total",
    "switchyard_rtp_packets_out_total",
    "switchyard_rtp_bytes_in_total",
    "switchyard_rtp_bytes_out_total",
    "switchyard_nacks_received_total",
    "switchyard_rtp_packets_dropped_total",
    "switchyard_keyframe_requests_received_total",
    "switchyard_plis_sent_total",
    "switchyard_join_seconds_bucket",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
];

/// Words of PromQL that are not metric names when they stand alone.
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
];

/// Words followed by a parenthesised list of label names, not an expression.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The index just past the bracket that closes the one at `open` (`{`, `[` or `(`), skipping
/// strings inside; the end of the text if it never closes.
fn past_closing(text: &[u8], open: usize) -> usize {
    let (opening, closing) = match text[open] {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => (b'(', b')'),
    };
    let mut depth = 0;
    let mut at = open;
    while at < text.len() {
        match text[at] {
            b'"' | b'\'' | b'`' => {
                at = past_string(text, at);
                continue;
            }
            c if c == opening => depth += 1,
            c if c == closing => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    text.len()
}

/// The index just past the string literal that starts at `open`.
fn past_string(text: &[u8], open: usize) -> usize {
    let quote = text[open];
    let mut at = open + 1;
    while at < text.len() {
        match text[at] {
            b'\\' if quote != b'`' => at += 2,
            c if c == quote => return at + 1,
            _ => at += 1,
        }
    }
    text.len()
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_part(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The metric names a PromQL expression reads: what is left once strings, label matchers
/// (`{...}`), ranges (`[...]`), numbers and durations, Grafana's `$variables`, functions and
/// aggregations (a name followed by `(`), the label lists of `by (...)` and its kin, and
/// keywords are taken out. Series names stay as written (`..._bucket`, `..._total`).
fn metric_names(expression: &str) -> Vec<String> {
    let text = expression.as_bytes();
    let mut names = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let c = text[at];
        if matches!(c, b'"' | b'\'' | b'`') {
            at = past_string(text, at);
        } else if matches!(c, b'{' | b'[') {
            at = past_closing(text, at);
        } else if c.is_ascii_digit() || c == b'.' {
            // A number or a duration: 0.9, 1e3, 0x1f, 5m.
            while at < text.len() && (text[at].is_ascii_alphanumeric() || text[at] == b'.') {
                at += 1;
            }
        } else if c == b'$' {
            // A Grafana variable: $name or ${name}.
            at += 1;
            if text.get(at) == Some(&b'{') {
                at = past_closing(text, at);
            }
            while at < text.len() && is_name_part(text[at]) {
                at += 1;
            }
        } else if is_name_start(c) {
            let start = at;
            while at < text.len() && is_name_part(text[at]) {
                at += 1;
            }
            let word = &expression[start..at];
            let mut next = at;
            while next < text.len() && text[next].is_ascii_whitespace() {
                next += 1;
            }
            // A function's `(`, or an aggregation's modifier before its `(`: `sum by (le) (...)`.
            let rest = &expression[next..];
            let called = rest.starts_with('(')
                || ["by", "without"].iter().any(|modifier| {
                    rest.strip_prefix(modifier).is_some_and(|after| {
                        after.trim_start().starts_with('(')
                            && !after.starts_with(|c: char| is_name_part(c as u8))
                    })
                });
            if LABEL_LISTS.contains(&word) {
                if rest.starts_with('(') {
                    at = past_closing(text, next);
                }
            } else if !called && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.push(word.to_owned());
            }
        } else {
            at += 1;
        }
    }
    names
}

/// The metric a template variable's query reads: `label_values(metric, label)` reads `metric`;
/// `query_result(expression)` the expression's; `label_values(label)` and `metrics(...)` none.
fn variable_metric_names(query: &str) -> Vec<String> {
    let query = query.trim();
    if let Some(arguments) = query
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return match arguments.rsplit_once(',') {
            Some((metric, _label)) => metric_names(metric),
            None => Vec::new(),
        };
    }
    if let Some(expression) = query
        .strip_prefix("query_result(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return metric_names(expression);
    }
    Vec::new()
}

/// Every query in the dashboard: each panel target's `expr` (rows' nested panels included),
/// and each template variable's query.
fn dashboard_queries(dashboard: &Value) -> (Vec<String>, Vec<String>) {
    fn panels<'a>(list: &'a Value, into: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            into.push(panel);
            panels(&panel["panels"], into);
        }
    }
    let mut all = Vec::new();
    panels(&dashboard["panels"], &mut all);
    let expressions = all
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|variable| variable["type"] == "query")
        .filter_map(|variable| {
            let query = &variable["query"];
            query["query"]
                .as_str()
                .or_else(|| query.as_str())
                .map(str::to_owned)
        })
        .collect();
    (expressions, variables)
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let cases: [(&str, &[&str]); 10] = [
        (
            "sum without (instance) (rate(bytes_total[1m])) / sum(by_room)",
            &["bytes_total", "by_room"],
        ),
        ("topk by (job) (3, up)", &["up"]),
        ("switchyard_rooms", &["switchyard_rooms"]),
        (
            r#"sum(switchyard_rooms{instance=~"$instance"})"#,
            &["switchyard_rooms"],
        ),
        (
            r#"histogram_quantile(0.9, sum by (le) (rate(switchyard_join_seconds_bucket{instance=~"a|b", job!="x{y}"}[5m])))"#,
            &["switchyard_join_seconds_bucket"],
        ),
        (
            "sum(rate(a_total[$__rate_interval])) by (reason) / on(instance) group_left(job) b",
            &["a_total", "b"],
        ),
        (
            "max(time() - process_start_time_seconds offset 1h)",
            &["process_start_time_seconds"],
        ),
        (
            r#"rate(x[5m:30s]) > bool 1e3 and on () count_values("le", y) unless Inf"#,
            &["x", "y"],
        ),
        (
            "rate(process_cpu_seconds_total[${__rate_interval}])",
            &["process_cpu_seconds_total"],
        ),
        (
            "vector(1) + scalar(c:recorded:rate5m)",
            &["c:recorded:rate5m"],
        ),
    ];
    for (expression, expected) in cases {
        assert_eq!(metric_names(expression), expected, "{expression}");
    }
    assert_eq!(
        variable_metric_names("label_values(switchyard_rooms{job=\"s\"}, instance)"),
        ["switchyard_rooms"]
    );
    assert!(variable_metric_names("label_values(instance)").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_in_metrics() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(DASHBOARD).expect("the dashboard is readable"),
    )
    .expect("the dashboard is JSON");
    let (expressions, variables) = dashboard_queries(&dashboard);
    assert!(!expressions.is_empty(), "the dashboard has queries");
    let mut queried = BTreeSet::new();
    for expression in &expressions {
        let names = metric_names(expression);
        assert!(!names.is_empty(), "no metric in `{expression}`");
        queried.extend(names);
    }
    for query in &variables {
        let names = variable_metric_names(query);
        assert!(!names.is_empty(), "no metric in the variable `{query}`");
        queried.extend(names);
    }
    for required in REQUIRED {
        assert!(
            queried.contains(required),
            "the dashboard does not show {required}"
        );
    }

    // A call on a server with an internal address, scraped there as Prometheus would.
    let mut config = Config::loopback();
    config.http.internal_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = server_with(config).await;
    let ada = join(&server, "dashboard", "ada", camera_and_microphone()).await;
    let brian = join(&server, "dashboard", "brian", camera_and_microphone()).await;
    for participant in [&ada, &brian] {
        wait_for_flowing_tracks(participant, 2).await;
    }
    let internal = server.internal_addr().expect("an internal address");
    let (status, text) = common::http::get(internal, "/metrics")
        .await
        .expect("GET /metrics");
    assert_eq!(status, 200, "{text}");
    let scrape = common::prometheus::parse(&text).unwrap_or_else(|error| panic!("{error}"));
    assert!(scrape.value("switchyard_rtp_packets_out_total") > 0.0);
    let exported: BTreeSet<&str> = scrape
        .samples
        .keys()
        .map(|series| series.split('{').next().unwrap_or(series))
        .collect();
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !exported.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series /metrics does not have: {missing:?}\nexported: {exported:?}"
    );

    ada.leave().await;
    brian.leave().await;
    server.shutdown().await.expect("the server shuts down");
}
