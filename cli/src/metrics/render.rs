//! The Prometheus text exposition (format 0.0.4) of many databases' reports, through the `prometheus` crate's
//! TextEncoder over plain metric families (it escapes names' help and label values and writes the histogram
//! layout); vigil only groups samples into families.

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};

use super::{DbReport, Sample};

const UP_HELP: &str = "1 when vigil could open and read the database in this collection, 0 when it could not";

pub fn render(reports: &[DbReport]) -> String {
    let mut families: Vec<MetricFamily> = vec![up_family(reports)];
    for report in reports.iter().filter(|r| r.up) {
        for (name, samples) in grouped(&report.samples) {
            let metric = metric(&report.target.name, &samples);
            match families.iter_mut().find(|f| f.name() == name) {
                Some(family) => family.mut_metric().push(metric),
                None => families.push(family(&name, samples[0], metric)),
            }
        }
    }
    // An empty family is an encoder error: none without databases.
    families.retain(|f| !f.get_metric().is_empty());
    let mut text = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut text) {
        // Only a family without metrics or name can fail, and neither is left.
        eprintln!("vigil metrics: cannot encode: {e}");
    }
    text
}

fn up_family(reports: &[DbReport]) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name("vigil_up".into());
    family.set_help(UP_HELP.into());
    family.set_field_type(MetricType::GAUGE);
    for report in reports {
        let mut gauge = Gauge::default();
        gauge.set_value(if report.up { 1.0 } else { 0.0 });
        let mut metric = Metric::from_gauge(gauge);
        metric.set_label(vec![label("db", &report.target.name)]);
        family.mut_metric().push(metric);
    }
    family
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` samples are one family.
fn family_name(sample: &Sample) -> &str {
    if sample.kind != "histogram" {
        return &sample.metric;
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|s| sample.metric.strip_suffix(s)).unwrap_or(&sample.metric)
}

/// One report's samples as (family, series) groups: samples of one series (same family and labels other than
/// `le`) together, in order of first appearance; `vigil_up` is rendered from the report itself.
fn grouped(samples: &[Sample]) -> Vec<(String, Vec<&Sample>)> {
    let mut groups: Vec<(String, Vec<&Sample>)> = Vec::new();
    for sample in samples.iter().filter(|s| s.metric != "vigil_up" && s.value.is_finite()) {
        let name = family_name(sample).to_string();
        let key = series_labels(sample);
        match groups.iter_mut().find(|(n, g)| *n == name && series_labels(g[0]) == key) {
            Some((_, group)) => group.push(sample),
            None => groups.push((name, vec![sample])),
        }
    }
    groups
}

fn series_labels(sample: &Sample) -> Vec<&(String, String)> {
    sample.labels.iter().filter(|(k, _)| k != "le").collect()
}

fn family(name: &str, first: &Sample, metric: Metric) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.into());
    family.set_help(first.help.clone());
    family.set_field_type(match first.kind.as_str() {
        "counter" => MetricType::COUNTER,
        "histogram" => MetricType::HISTOGRAM,
        _ => MetricType::GAUGE,
    });
    family.set_metric(vec![metric]);
    family
}

fn metric(db: &str, series: &[&Sample]) -> Metric {
    let first = series[0];
    let mut labels = vec![label("db", db)];
    labels.extend(series_labels(first).into_iter().filter(|(k, _)| k != "db").map(|(k, v)| label(k, v)));
    let mut metric = Metric::from_label(labels);
    match first.kind.as_str() {
        "counter" => {
            let mut counter = Counter::default();
            counter.set_value(first.value);
            metric.set_counter(counter);
        }
        "histogram" => metric.set_histogram(histogram(series)),
        _ => {
            let mut gauge = Gauge::default();
            gauge.set_value(first.value);
            metric.set_gauge(gauge);
        }
    }
    metric
}

/// A histogram from its flat samples; the encoder writes `+Inf` from the count, so that bucket is not copied.
fn histogram(series: &[&Sample]) -> Histogram {
    let mut histogram = Histogram::default();
    let mut buckets = Vec::new();
    for sample in series {
        if let Some(bound) = sample.metric.strip_suffix("_bucket").and(le(sample)) {
            if bound.is_finite() {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(bound);
                bucket.set_cumulative_count(sample.value as u64);
                buckets.push(bucket);
            }
        } else if sample.metric.ends_with("_sum") {
            histogram.set_sample_sum(sample.value);
        } else if sample.metric.ends_with("_count") {
            histogram.set_sample_count(sample.value as u64);
        }
    }
    buckets.sort_by(|a, b| a.upper_bound().total_cmp(&b.upper_bound()));
    histogram.set_bucket(buckets);
    histogram
}

fn le(sample: &Sample) -> Option<f64> {
    let (_, text) = sample.labels.iter().find(|(k, _)| k == "le")?;
    match text.as_str() {
        "+Inf" => Some(f64::INFINITY),
        number => number.parse().ok(),
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.into());
    pair.set_value(value.into());
    pair
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{DbReport, Target};

    fn report(name: &str, up: bool, samples: Vec<Sample>) -> DbReport {
        DbReport {
            target: Target { name: name.into(), path: name.into() },
            up,
            error: None,
            status: None,
            failing: vec![],
            checks: vec![],
            samples,
            collected_at: std::time::SystemTime::now(),
        }
    }

    fn sample(metric: &str, kind: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Sample { metric: metric.into(), kind: kind.into(), help: "h".into(), labels, value }
    }

    #[test]
    fn families_are_contiguous_across_databases_and_histograms_end_with_their_count() {
        let samples = |n: f64| {
            vec![
                sample("vigil_health_status", "gauge", &[("check", "a")], n),
                sample("vigil_health_status", "gauge", &[("check", "b")], 0.0),
                sample("vigil_q_seconds_bucket", "histogram", &[("le", "0.1")], 1.0),
                sample("vigil_q_seconds_bucket", "histogram", &[("le", "+Inf")], 3.0),
                sample("vigil_q_seconds_sum", "histogram", &[], 0.5),
                sample("vigil_q_seconds_count", "histogram", &[], 3.0),
                sample("vigil_up", "gauge", &[], 1.0),
            ]
        };
        let text = render(&[report("a.db", true, samples(1.0)), report("b\"\n.db", true, samples(2.0))]);
        let expected = "# HELP vigil_up 1 when vigil could open and read the database in this collection, 0 when it \
                        could not\n# TYPE vigil_up gauge\nvigil_up{db=\"a.db\"} 1\nvigil_up{db=\"b\\\"\\n.db\"} 1\n\
                        # HELP vigil_health_status h\n# TYPE vigil_health_status gauge\n\
                        vigil_health_status{db=\"a.db\",check=\"a\"} 1\nvigil_health_status{db=\"a.db\",check=\"b\"} 0\n\
                        vigil_health_status{db=\"b\\\"\\n.db\",check=\"a\"} 2\n\
                        vigil_health_status{db=\"b\\\"\\n.db\",check=\"b\"} 0\n\
                        # HELP vigil_q_seconds h\n# TYPE vigil_q_seconds histogram\n\
                        vigil_q_seconds_bucket{db=\"a.db\",le=\"0.1\"} 1\nvigil_q_seconds_bucket{db=\"a.db\",le=\"+Inf\"} 3\n\
                        vigil_q_seconds_sum{db=\"a.db\"} 0.5\nvigil_q_seconds_count{db=\"a.db\"} 3\n\
                        vigil_q_seconds_bucket{db=\"b\\\"\\n.db\",le=\"0.1\"} 1\n\
                        vigil_q_seconds_bucket{db=\"b\\\"\\n.db\",le=\"+Inf\"} 3\n\
                        vigil_q_seconds_sum{db=\"b\\\"\\n.db\"} 0.5\nvigil_q_seconds_count{db=\"b\\\"\\n.db\"} 3\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_database_that_is_down_has_only_vigil_up_and_no_databases_render_nothing() {
        let down = report("gone.db", false, vec![sample("vigil_pages", "gauge", &[], 3.0)]);
        assert_eq!(
            render(&[down]).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(),
            ["vigil_up{db=\"gone.db\"} 0"]
        );
        assert_eq!(render(&[]), "");
    }
}
