//! The final table: each measure, its result and the design target it is held against.

use crate::cli::table::Table;

#[derive(Default)]
pub struct Report {
    rows: Vec<Vec<String>>,
}

impl Report {
    /// A measure with a design target of at most `limit`, both in `unit`.
    pub fn target(&mut self, measure: &str, value: f64, limit: f64, unit: &str) {
        let met = if value <= limit { "yes" } else { "no" };
        self.rows.push(vec![
            measure.to_owned(),
            format!("{value:.2} {unit}"),
            format!("≤ {limit} {unit}"),
            met.to_owned(),
        ]);
    }

    /// A measure without a target, shown for context.
    pub fn info(&mut self, measure: &str, result: String) {
        self.rows
            .push(vec![measure.to_owned(), result, "-".to_owned()]);
    }

    pub fn print(self) {
        let mut t = Table::new(&["MEASURE", "RESULT", "DESIGN TARGET", "MET"]);
        for row in self.rows {
            t.row(row);
        }
        print!("{}", t.render());
    }
}
