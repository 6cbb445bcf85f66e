//! The final report: each measure, its result and the target it is held against,
//! as a table or, with `--json`, as one JSON array.

use crate::cli::table::Table;
pub use crate::cli::table::count;
use serde::Serialize;

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

/// One measure. `value`, `unit`, `target`, `bound` and `met` are null for a measure shown for
/// context.
#[derive(Debug, PartialEq, Serialize)]
struct Row {
    measure: String,
    /// As the table shows it.
    result: String,
    value: Option<f64>,
    unit: Option<String>,
    /// The bound `value` is held against, in `unit`.
    target: Option<f64>,
    /// Which side of `target` meets it: most targets are upper bounds (latencies), a
    /// throughput is a lower one.
    bound: Option<Bound>,
    met: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Bound {
    AtMost,
    AtLeast,
}

impl Report {
    /// A measure with a target of at most `limit`, both in `unit`.
    pub fn target(&mut self, measure: &str, value: f64, limit: f64, unit: &str) {
        self.bounded(measure, value, limit, unit, Bound::AtMost);
    }

    /// A measure with a target of at least `floor`, both in `unit`.
    pub fn target_at_least(&mut self, measure: &str, value: f64, floor: f64, unit: &str) {
        self.bounded(measure, value, floor, unit, Bound::AtLeast);
    }

    fn bounded(&mut self, measure: &str, value: f64, target: f64, unit: &str, bound: Bound) {
        let met = match bound {
            Bound::AtMost => value <= target,
            Bound::AtLeast => value >= target,
        };
        self.rows.push(Row {
            measure: measure.to_owned(),
            result: format!("{value:.2} {unit}"),
            value: Some(value),
            unit: Some(unit.to_owned()),
            target: Some(target),
            bound: Some(bound),
            met: Some(met),
        });
    }

    /// A measure without a target, shown for context.
    pub fn info(&mut self, measure: &str, result: String) {
        self.rows.push(Row {
            measure: measure.to_owned(),
            result,
            value: None,
            unit: None,
            target: None,
            bound: None,
            met: None,
        });
    }

    /// Prints the table, or with `json` one JSON document on one line.
    pub fn print(self, json: bool) {
        let text = if json {
            serde_json::to_string(&self.rows).expect("rows serialize") + "\n"
        } else {
            self.table().render()
        };
        crate::cli::write_stdout(&text);
    }

    fn table(&self) -> Table {
        let mut t = Table::new(&["MEASURE", "RESULT", "TARGET", "MET"]);
        for r in &self.rows {
            let target = match (r.target, &r.unit, r.bound) {
                (Some(limit), Some(unit), Some(Bound::AtMost)) => format!("≤ {limit} {unit}"),
                (Some(floor), Some(unit), Some(Bound::AtLeast)) => format!("≥ {floor} {unit}"),
                _ => "-".to_owned(),
            };
            let met = r.met.map(|m| if m { "yes" } else { "no" });
            t.row(vec![
                r.measure.clone(),
                r.result.clone(),
                target,
                met.unwrap_or("").to_owned(),
            ]);
        }
        t
    }
}

/// `1,000` for 1000: the measure names read as the targets are written.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        let t = thousands;
        assert_eq!(
            (t(7), t(999), t(1000), t(12345)),
            ("7".into(), "999".into(), "1,000".into(), "12,345".into())
        );
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1u32, "run"), "1 run");
        assert_eq!(count(0u32, "run"), "0 runs");
        assert_eq!(count(10u64, "agent"), "10 agents");
    }

    fn sample() -> Report {
        let mut r = Report::default();
        r.target("warm spawn p50", 1.5, 2.0, "ms");
        r.info("runs", "3/3".to_owned());
        r.target_at_least("throughput", 6000.0, 6500.0, "tasks/s");
        r
    }

    #[test]
    fn json_rows_carry_value_unit_target_bound_and_met() {
        let rows = serde_json::to_value(&sample().rows).unwrap();
        assert_eq!(
            rows,
            serde_json::json!([
                {"measure": "warm spawn p50", "result": "1.50 ms", "value": 1.5, "unit": "ms",
                 "target": 2.0, "bound": "at_most", "met": true},
                {"measure": "runs", "result": "3/3", "value": null, "unit": null,
                 "target": null, "bound": null, "met": null},
                {"measure": "throughput", "result": "6000.00 tasks/s", "value": 6000.0,
                 "unit": "tasks/s", "target": 6500.0, "bound": "at_least", "met": false}
            ])
        );
    }

    #[test]
    fn table_shows_the_bound() {
        let text = sample().table().render();
        let cells = |measure: &str| -> Vec<String> {
            let line = text.lines().find(|l| l.starts_with(measure)).unwrap();
            line.split("  ")
                .filter(|c| !c.is_empty())
                .map(|c| c.trim().to_owned())
                .collect()
        };
        assert_eq!(
            cells("warm spawn p50"),
            ["warm spawn p50", "1.50 ms", "≤ 2 ms", "yes"]
        );
        assert_eq!(cells("runs"), ["runs", "3/3", "-"]);
        assert_eq!(
            cells("throughput"),
            ["throughput", "6000.00 tasks/s", "≥ 6500 tasks/s", "no"]
        );
    }
}
