//! Reading `/metrics` with an OpenMetrics parser, which also checks the text is well formed
//! (descriptors before samples, counters' `_total`, cumulative histogram buckets, `# EOF`).

use std::collections::HashMap;

use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricNumber, OpenMetricsValue};

/// The samples of one scrape, by the series name Prometheus stores: `name` for a gauge,
/// `name_total` for a counter, `name_count`, `name_sum` and `name_bucket{le="..."}` for a
/// histogram; a labelled sample's labels follow its name, as in `name_total{reason="..."}`.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Every sample's value.
    pub samples: HashMap<String, f64>,
}

impl Scrape {
    /// The value of a series; panics when it is missing.
    pub fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in the scrape"))
    }
}

/// Parses `text`, refusing anything that is not valid OpenMetrics.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let exposition = parse_openmetrics(text).map_err(|error| format!("{error:?}"))?;
    let mut scrape = Scrape::default();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let labels = labels_of(sample)?;
            let mut put = |series: String, value: f64| {
                let series = if labels.is_empty() || series.ends_with('}') {
                    series
                } else {
                    format!("{series}{{{labels}}}")
                };
                scrape.samples.insert(series, value)
            };
            match &sample.value {
                OpenMetricsValue::Gauge(value) | OpenMetricsValue::Unknown(value) => {
                    put(name.clone(), number(value));
                }
                OpenMetricsValue::Counter(counter) => {
                    put(format!("{name}_total"), number(&counter.value));
                }
                OpenMetricsValue::Histogram(histogram) => {
                    for bucket in &histogram.buckets {
                        let bound = if bucket.upper_bound.is_infinite() {
                            "+Inf".to_owned()
                        } else {
                            bucket.upper_bound.to_string()
                        };
                        put(
                            format!("{name}_bucket{{le=\"{bound}\"}}"),
                            number(&bucket.count),
                        );
                    }
                    put(
                        format!("{name}_count"),
                        histogram.count.unwrap_or_default() as f64,
                    );
                    put(
                        format!("{name}_sum"),
                        histogram.sum.as_ref().map_or(0.0, number),
                    );
                }
                other => return Err(format!("{name}: a type /metrics does not use: {other:?}")),
            };
        }
    }
    Ok(scrape)
}

/// A sample's labels as `a="x",b="y"`, in the order the text gave them; empty for none.
fn labels_of(sample: &openmetrics_parser::Sample<OpenMetricsValue>) -> Result<String, String> {
    let labels = sample
        .get_labelset()
        .map_err(|error| format!("{error:?}"))?;
    Ok(labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect::<Vec<_>>()
        .join(","))
}

fn number(value: &MetricNumber) -> f64 {
    value.as_f64()
}
