//! Histograms as the JSON report carries them, so that reports can be merged
//! ([`crate::merge`]) with percentiles taken from the merged distribution rather than averaged:
//! HdrHistogram's own compressed form (V2 with deflate), base64-encoded, which HdrHistogram's
//! tools in other languages read too.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// A histogram in a report; empty when nothing was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(pub String);

/// A report's histogram cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("a histogram in the report cannot be read: {0}")]
pub struct HistogramError(String);

impl EncodedHistogram {
    /// Encodes `histogram`.
    pub fn encode(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let mut bytes = Vec::new();
        match V2DeflateSerializer::new().serialize(histogram, &mut bytes) {
            Ok(_) => Self(base64::engine::general_purpose::STANDARD.encode(bytes)),
            // Serializing to memory fails only for a histogram too large to describe, which a
            // bounded one is not; a report without it still has its percentiles.
            Err(error) => {
                tracing::warn!(?error, "a histogram could not be encoded");
                Self::default()
            }
        }
    }

    /// Decodes it; `None` when it is empty.
    pub fn decode(&self) -> Result<Option<Histogram<u64>>, HistogramError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.0)
            .map_err(|error| HistogramError(error.to_string()))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map(Some)
            .map_err(|error| HistogramError(format!("{error:?}")))
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sum of `encoded`, as a histogram shaped like `empty()`'s.
    pub fn sum<'a>(
        encoded: impl IntoIterator<Item = &'a EncodedHistogram>,
        empty: impl Fn() -> Histogram<u64>,
    ) -> Result<Histogram<u64>, HistogramError> {
        let mut total = empty();
        for histogram in encoded {
            if let Some(histogram) = histogram.decode()? {
                total
                    .add(&histogram)
                    .map_err(|error| HistogramError(format!("{error:?}")))?;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn round_trips_and_sums() {
        let mut first = new_histogram();
        let mut second = new_histogram();
        for value in 1..=1000 {
            first.record(value * 10).expect("in range");
            second.record(value * 1000).expect("in range");
        }
        let encoded = [
            EncodedHistogram::encode(&first),
            EncodedHistogram::encode(&second),
            EncodedHistogram::encode(&new_histogram()),
        ];
        assert!(encoded[2].is_empty());
        assert_eq!(encoded[0].decode().expect("decodes"), Some(first.clone()));
        let sum = EncodedHistogram::sum(&encoded, new_histogram).expect("sums");
        assert_eq!(sum.len(), 2000);
        assert_eq!(sum.max(), second.max());
        assert!(EncodedHistogram("not base64!".into()).decode().is_err());
    }
}
