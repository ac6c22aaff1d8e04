//! `--html FILE`: the report as one self-contained page, to open in any browser without a
//! network: the run second by second (forwarded packets, received bitrate, loss, latency,
//! freezes, server CPU, participants and their join times), the join-time distribution, the
//! headline table and the failures, with the charts inline as SVG ([`crate::charts`]).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::charts::{Chart, ChartError, Line};
use crate::histogram::{EncodedHistogram, HistogramError};
use crate::report::{Report, failure_summary, receivers, video_description};
use crate::series::SecondPoint;

/// The page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// A chart failed.
    #[error(transparent)]
    Chart(#[from] ChartError),
    /// A histogram in the report is unreadable.
    #[error(transparent)]
    Histogram(#[from] HistogramError),
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:820px;color:#222}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em}\
.meta{color:#555;margin:.2em 0}table{border-collapse:collapse;margin:1em 0}\
td,th{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left}td.value{text-align:right;font-variant-numeric:tabular-nums}\
figure.chart{margin:1.2em 0}figure.chart svg{display:block;max-width:100%;height:auto}\
.stopped{color:#b00;font-weight:bold}";

/// The page for `report`.
pub fn page(report: &Report) -> Result<String, HtmlError> {
    let mut out = String::new();
    let scenario = &report.scenario;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Load test: {target}</title><style>{STYLE}</style></head><body>\n\
         <h1>Load test of {target}</h1>\n",
        target = escape(&report.target)
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} room(s) × ({} publishers + {} subscribers), video {} at {} fps, \
         audio {}, {:.1} s measured{}</p>",
        scenario.rooms,
        scenario.publishers,
        scenario.subscribers,
        escape(&video_description(scenario)),
        scenario.fps,
        if scenario.audio { "on" } else { "off" },
        report.window_seconds,
        scenario.churn.map_or(String::new(), |churn| format!(
            ", churn {} joins/s staying {:.0} s",
            churn.rate,
            churn.stay.as_secs_f64()
        )),
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} — run {}{}</p>",
        escape(&report.run.url),
        escape(&report.run.run_id),
        if report.run.merged_shards > 1 {
            format!(", merged from {} load machines", report.run.merged_shards)
        } else if report.run.shard.is_whole() {
            String::new()
        } else {
            format!(", shard {}", report.run.shard)
        }
    );
    if report.run.interrupted {
        out.push_str(
            "<p class=\"stopped\">Stopped early: the figures cover what was measured until then.</p>\n",
        );
    }

    out.push_str("<h2>Summary</h2>\n<table>\n");
    for (label, value) in report.headline() {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"value\">{}</td></tr>",
            escape(label),
            escape(&value)
        );
    }
    out.push_str("</table>\n");
    failures(&mut out, report);
    receiver_table(&mut out, report);

    out.push_str("<h2>Second by second</h2>\n<p class=\"meta\">The shaded band is the measurement window.</p>\n");
    for chart in timeline(report) {
        figure(&mut out, &chart)?;
    }
    out.push_str("<h2>Join times</h2>\n");
    figure(&mut out, &join_distribution(report)?)?;
    out.push_str("</body></html>\n");
    Ok(out)
}

fn figure(out: &mut String, chart: &Chart<'_>) -> Result<(), HtmlError> {
    let svg = chart.svg()?;
    let _ = writeln!(out, "<figure class=\"chart\">{svg}</figure>");
    Ok(())
}

fn failures(out: &mut String, report: &Report) {
    let mut groups = failure_summary(&report.participants.failures);
    if let Some(churn) = &report.churn {
        groups.extend(failure_summary(&churn.failures));
    }
    if groups.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Participants that could not join</h2>\n<table><tr><th>how many</th><th>why</th><th>who</th></tr>\n",
    );
    for (count, reason, who) in groups {
        let _ = writeln!(
            out,
            "<tr><td class=\"value\">{count}</td><td>{}</td><td>{}</td></tr>",
            escape(&reason),
            escape(&who)
        );
    }
    out.push_str("</table>\n");
}

/// What each participant received: bytes, bitrate, seconds on each simulcast layer, pauses.
fn receiver_table(out: &mut String, report: &Report) {
    if report.per_receiver.is_empty() {
        return;
    }
    let mut rids: Vec<&String> = report.layer_seconds.keys().collect();
    rids.sort_by_key(|rid| receivers::layer_rank(rid));
    out.push_str("<h2>What each participant received</h2>\n");
    if !rids.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Video layers received, share of time: {}</p>",
            escape(&receivers::layer_shares(&report.layer_seconds))
        );
    }
    out.push_str("<table><tr><th>participant</th><th>MB</th><th>kbit/s</th>");
    for rid in &rids {
        let _ = write!(out, "<th>{} s</th>", escape(rid));
    }
    out.push_str("<th>pauses</th></tr>\n");
    for receiver in &report.per_receiver {
        let _ = write!(
            out,
            "<tr><td>{}{}</td><td class=\"value\">{:.2}</td><td class=\"value\">{:.0}</td>",
            escape(&receiver.name),
            if receiver.impaired { " (impaired)" } else { "" },
            receiver.bytes as f64 / 1e6,
            receiver.bitrate_bps / 1000.0
        );
        for rid in &rids {
            let seconds = receiver.layer_seconds.get(*rid).copied().unwrap_or(0.0);
            let _ = write!(out, "<td class=\"value\">{seconds:.1}</td>");
        }
        let _ = writeln!(out, "<td class=\"value\">{}</td></tr>", receiver.pauses);
    }
    out.push_str("</table>\n");
}

/// The charts of the run second by second.
fn timeline(report: &Report) -> Vec<Chart<'static>> {
    let points = &report.series.0;
    let origin = points.first().map_or(0, |point| point.unix) as f64;
    let x = |point: &SecondPoint| point.unix as f64 - origin;
    let line = |name: &'static str, value: &dyn Fn(&SecondPoint) -> Option<f64>| Line {
        name,
        points: points
            .iter()
            .map(|point| (x(point), value(point)))
            .collect(),
    };
    let (opened, closed) = report.run.window_unix;
    let shaded = (closed > opened).then_some((opened - origin, closed - origin));
    let last = points.last().map_or(1.0, x);
    let chart = |title, y_label, lines| Chart {
        title,
        x_label: "seconds since the first participant started",
        y_label,
        lines,
        shaded,
        x_range: Some((0.0, last.max(1.0))),
        x_log: false,
    };
    let latency = |quantile: fn(&SecondPoint) -> f64| {
        move |point: &SecondPoint| (!point.latency_us.is_empty()).then(|| quantile(point))
    };
    let joins = |quantile: fn(&SecondPoint) -> f64| {
        move |point: &SecondPoint| (point.joins > 0).then(|| quantile(point))
    };
    vec![
        chart(
            "Packets per second",
            "packets/s",
            vec![
                line("forwarded by the server", &|point| {
                    point.server_forwarded_packets
                }),
                line("received by the participants", &|point| {
                    Some(point.rate(point.received_packets as f64))
                }),
            ],
        ),
        chart(
            "Bitrate received, all participants",
            "Mbit/s",
            vec![line("received", &|point| {
                Some(point.rate(point.received_bytes as f64 * 8.0 / 1e6))
            })],
        ),
        chart(
            "Loss after retransmission",
            "% of packets due",
            vec![
                line("video", &|point| {
                    point.loss.video().map(|loss| loss * 100.0)
                }),
                line("audio", &|point| {
                    point.loss.audio().map(|loss| loss * 100.0)
                }),
            ],
        ),
        chart(
            "Latency, publisher to receiver",
            "ms",
            vec![
                line("p50", &latency(|point| point.latency_ms.p50)),
                line("p99", &latency(|point| point.latency_ms.p99)),
            ],
        ),
        chart(
            "Video freezes",
            "freezes/s",
            vec![line("freezes", &|point| {
                Some(point.rate(point.freezes as f64))
            })],
        ),
        chart(
            "Server CPU",
            "% of one core",
            vec![line("CPU", &|point| {
                point.server_cpu_seconds.map(|cpu| cpu * 100.0)
            })],
        ),
        chart(
            "Participants",
            "participants",
            vec![
                line("in the rooms", &|point| Some(point.participants as f64)),
                line("joining per second", &|point| {
                    Some(point.rate(point.joins as f64))
                }),
            ],
        ),
        chart(
            "Join time by second, socket to joined",
            "ms",
            vec![
                line("p50", &joins(|point| point.join_ms.p50)),
                line("p99", &joins(|point| point.join_ms.p99)),
            ],
        ),
    ]
}

/// The join times as cumulative distributions.
fn join_distribution(report: &Report) -> Result<Chart<'static>, HtmlError> {
    let mut lines = vec![
        cumulative("socket → joined", &report.histograms.join_to_joined_us)?,
        cumulative(
            "→ every remote track",
            &report.histograms.join_to_all_tracks_us,
        )?,
    ];
    if let Some(churn) = &report.churn {
        lines.push(cumulative(
            "churners: socket → joined",
            &churn.to_joined_us,
        )?);
        lines.push(cumulative(
            "churners: → every track",
            &churn.to_all_tracks_us,
        )?);
    }
    Ok(Chart {
        title: "Join-time distribution",
        x_label: "milliseconds (logarithmic)",
        y_label: "% of participants",
        lines,
        shaded: None,
        x_range: None,
        x_log: true,
    })
}

/// `histogram` (microseconds) as a cumulative distribution in milliseconds and percent.
fn cumulative(
    name: &'static str,
    histogram: &EncodedHistogram,
) -> Result<Line<'static>, HtmlError> {
    let histogram: Option<Histogram<u64>> = histogram.decode()?;
    let points = histogram.map_or_else(Vec::new, |histogram| {
        histogram
            .iter_recorded()
            .map(|step| {
                (
                    step.value_iterated_to() as f64 / 1000.0,
                    Some(step.quantile_iterated_to() * 100.0),
                )
            })
            .collect()
    });
    Ok(Line { name, points })
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Failure, Histograms};
    use crate::series::{Quantiles, Series};
    use crate::stats::new_histogram;

    #[test]
    fn the_page_holds_every_chart_the_table_and_the_failures() {
        let mut joins = new_histogram();
        for millis in [40, 45, 60, 120] {
            joins.record(millis * 1000).expect("in range");
        }
        let points = (0..10)
            .map(|second| SecondPoint {
                unix: 1000 + second,
                covered: 1.0,
                participants: 4,
                received_packets: 3000,
                received_bytes: 3_000_000,
                server_forwarded_packets: Some(3000.0),
                server_cpu_seconds: Some(0.2),
                latency_ms: Quantiles { p50: 2.0, p99: 9.0 },
                ..SecondPoint::default()
            })
            .collect();
        let mut report = Report {
            target: "switchyard <test>".to_owned(),
            series: Series(points),
            histograms: Histograms {
                join_to_joined_us: EncodedHistogram::encode(&joins),
                ..Histograms::default()
            },
            ..Report::default()
        };
        report.run.window_unix = (1003.0, 1009.0);
        report.participants.failures.push(Failure {
            participant: "subscriber-0-1".to_owned(),
            room: "r".to_owned(),
            code: Some("room_full".to_owned()),
            reason: "refused: the room is full".to_owned(),
        });
        report.per_receiver.push(crate::report::ReceiverTotals {
            name: "subscriber-0-0".to_owned(),
            impaired: true,
            bytes: 2_000_000,
            layer_seconds: [("q".to_owned(), 4.0), ("f".to_owned(), 1.0)].into(),
            ..Default::default()
        });
        report.layer_seconds = report.per_receiver[0].layer_seconds.clone();
        let page = page(&report).expect("a page");
        assert!(page.contains("What each participant received"));
        assert!(
            page.contains("<th>q s</th><th>f s</th>"),
            "lowest layer first"
        );
        assert!(page.contains("subscriber-0-0 (impaired)"));
        assert!(page.contains("q 80% / f 20%"));
        assert_eq!(page.matches("<figure class=\"chart\"><svg").count(), 9);
        assert!(page.contains("switchyard &lt;test&gt;"), "escaped");
        assert!(page.contains("subscriber-0-1") && page.contains("the room is full"));
        assert!(page.contains("participants joined"), "the headline table");
        for fetching in ["src=", "href=", "<script", "<link", "url("] {
            assert!(!page.contains(fetching), "nothing to fetch: {fetching}");
        }
    }
}
