//! The Prometheus text exposition format, version 0.0.4, and the histogram the node records into.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds, in seconds, of the request latency buckets.
pub const REQUEST_SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Upper bounds, in seconds, of the job duration buckets (jobs copy and convert whole images).
pub const JOB_SECONDS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0, 12.0 * 3600.0];

/// A text exposition being written: each metric family once, with its `HELP` and `TYPE` lines.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

/// A metric's kind, as its `TYPE` line says.
#[derive(Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Exposition {
    /// Starts the family `name`; its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the family just started (`name` may carry a `_bucket`/`_sum`/`_count` suffix).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// The samples of one histogram series: cumulative buckets, `+Inf`, sum and count.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let snapshot = histogram.snapshot();
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (bound, count) in histogram.bounds.iter().zip(&snapshot.buckets) {
            cumulative += count;
            let le = format_value(*bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, snapshot.count as f64);
        self.sample(&format!("{name}_sum"), labels, snapshot.sum_seconds);
        self.sample(&format!("{name}_count"), labels, snapshot.count as f64);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{value}")
    }
}

/// Durations sorted into fixed buckets; updated without locks.
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

/// What a histogram held at one moment.
pub struct HistogramSnapshot {
    /// Per bound, not cumulative.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_nanos: AtomicU64::new(0) }
    }

    pub fn observe(&self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        let index = self.bounds.iter().position(|bound| seconds <= *bound).unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let all: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        HistogramSnapshot {
            count: all.iter().sum(),
            buckets: all[..self.bounds.len()].to_vec(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histograms_render_cumulative_buckets_with_sum_and_count() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(3));
        let mut out = Exposition::default();
        out.family("x_seconds", Kind::Histogram, "Test.");
        out.histogram("x_seconds", &[("route", "/a/\"b\"")], &h);
        let text = out.finish();
        assert!(text.contains("# TYPE x_seconds histogram\n"));
        assert!(text.contains("x_seconds_bucket{route=\"/a/\\\"b\\\"\",le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{route=\"/a/\\\"b\\\"\",le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{route=\"/a/\\\"b\\\"\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_sum{route=\"/a/\\\"b\\\"\"} 3.55\n"), "{text}");
        assert!(text.contains("x_seconds_count{route=\"/a/\\\"b\\\"\"} 3\n"), "{text}");
    }
}
