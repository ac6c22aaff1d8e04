//! A strict reader of the Prometheus text exposition format (version 0.0.4), so a test can
//! both check that `/metrics` is well formed and read its values.

use std::collections::{HashMap, HashSet};

/// The samples of one scrape, by series: `name` or `name{label="value",...}` as written.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Every sample's value.
    pub samples: HashMap<String, f64>,
}

impl Scrape {
    /// The value of an unlabelled series; panics when it is missing.
    pub fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in the scrape"))
    }
}

#[derive(Debug)]
struct Family {
    kind: String,
    /// Histogram buckets in the order written: (upper bound, cumulative count).
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: Option<f64>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse()
            .map_err(|_| format!("`{text}` is not a sample value")),
    }
}

/// Splits `name{a="1",b="2"}` into the name and its labels.
fn parse_series(series: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some((name, rest)) = series.split_once('{') else {
        return Ok((series.to_owned(), Vec::new()));
    };
    let body = rest
        .strip_suffix('}')
        .ok_or_else(|| format!("unclosed labels in `{series}`"))?;
    let mut labels = Vec::new();
    for pair in body.split(',').filter(|pair| !pair.is_empty()) {
        let (label, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("label without a value in `{series}`"))?;
        let value = value
            .strip_prefix('"')
            .and_then(|value| value.strip_suffix('"'))
            .ok_or_else(|| format!("unquoted label value in `{series}`"))?;
        if !is_metric_name(label) || label.contains(':') {
            return Err(format!("bad label name `{label}` in `{series}`"));
        }
        labels.push((label.to_owned(), value.to_owned()));
    }
    Ok((name.to_owned(), labels))
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` belong to the
/// histogram.
fn family_of<'a>(name: &'a str, families: &HashMap<String, Family>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families
                .get(base)
                .is_some_and(|family| family.kind == "histogram")
        {
            return base;
        }
    }
    name
}

/// Reads `text`, checking it as Prometheus does and more: every family has one HELP and one
/// TYPE line before its samples, its samples are together, no series repeats, counters end
/// in `_total` and are not negative, and each histogram's buckets rise to `+Inf`, which
/// equals its `_count`.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut helped = HashSet::new();
    let mut finished = HashSet::new();
    let mut current: Option<String> = None;
    let mut scrape = Scrape::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !is_metric_name(name) || !helped.insert(name.to_owned()) {
                return Err(format!("bad or repeated HELP line: {line}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| format!("TYPE without a type: {line}"))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("unknown type: {line}"));
            }
            if !is_metric_name(name) || families.contains_key(name) {
                return Err(format!("bad or repeated TYPE line: {line}"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(format!("counter {name} does not end in _total"));
            }
            families.insert(
                name.to_owned(),
                Family {
                    kind: kind.to_owned(),
                    buckets: Vec::new(),
                    count: None,
                    sum: None,
                },
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("sample without a value: {line}"))?;
        let value = parse_value(value)?;
        let (name, labels) = parse_series(series)?;
        if !is_metric_name(&name) {
            return Err(format!("bad metric name: {line}"));
        }
        let family_name = family_of(&name, &families).to_owned();
        let family = families
            .get_mut(&family_name)
            .ok_or_else(|| format!("sample before its TYPE line: {line}"))?;
        if !helped.contains(&family_name) {
            return Err(format!("{family_name} has no HELP line"));
        }
        if current.as_deref() != Some(family_name.as_str()) {
            if let Some(previous) = current.replace(family_name.clone()) {
                finished.insert(previous);
            }
            if finished.contains(&family_name) {
                return Err(format!("the samples of {family_name} are not together"));
            }
        }
        match family.kind.as_str() {
            "counter" if value < 0.0 || value.is_nan() => {
                return Err(format!("negative counter: {line}"));
            }
            "histogram" => {
                if name.ends_with("_bucket") {
                    let bound = labels
                        .iter()
                        .find(|(label, _)| label == "le")
                        .ok_or_else(|| format!("bucket without `le`: {line}"))?;
                    family.buckets.push((parse_value(&bound.1)?, value));
                } else if name.ends_with("_count") {
                    family.count = Some(value);
                } else if name.ends_with("_sum") {
                    family.sum = Some(value);
                } else {
                    return Err(format!("stray sample in histogram {family_name}: {line}"));
                }
            }
            _ => {}
        }
        if scrape.samples.insert(series.to_owned(), value).is_some() {
            return Err(format!("repeated series: {series}"));
        }
    }
    for (name, family) in &families {
        if family.kind != "histogram" {
            continue;
        }
        let pairs = family.buckets.windows(2);
        for pair in pairs {
            if pair[1].0 <= pair[0].0 || pair[1].1 < pair[0].1 {
                return Err(format!(
                    "{name}: buckets out of order: {:?}",
                    family.buckets
                ));
            }
        }
        let last = family.buckets.last().copied();
        if last.map(|(bound, _)| bound) != Some(f64::INFINITY) {
            return Err(format!("{name}: the last bucket is not +Inf"));
        }
        if last.map(|(_, count)| count) != family.count || family.sum.is_none() {
            return Err(format!(
                "{name}: +Inf bucket, _count and _sum disagree or are missing"
            ));
        }
    }
    Ok(scrape)
}
