//! Aligned plain-text tables, column widths taken from the content, optionally fitted to a
//! terminal width (see [`fit`](super::fit) for how).

use super::fit::{self, Fit};

/// Columns are separated by this many spaces.
pub(super) const GAP: usize = 2;

pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

pub(super) struct Column {
    pub header: String,
    pub fit: Fit,
}

impl Table {
    /// A table whose columns are never shortened or dropped.
    pub fn new(header: &[&str]) -> Self {
        let columns: Vec<(&str, Fit)> = header.iter().map(|h| (*h, Fit::FIXED)).collect();
        Self::fitted(&columns)
    }

    /// A table with what each column gives up when the width is short.
    pub fn fitted(columns: &[(&str, Fit)]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|(header, fit)| Column {
                    header: (*header).to_owned(),
                    fit: *fit,
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// The whole table, however wide.
    pub fn render(&self) -> String {
        self.render_within(None)
    }

    /// The table in at most `width` characters per line (`None`: no limit).
    pub fn render_within(&self, width: Option<usize>) -> String {
        let header: Vec<String> = self.columns.iter().map(|c| c.header.clone()).collect();
        let mut grid: Vec<Vec<String>> = std::iter::once(header)
            .chain(self.rows.iter().cloned())
            .collect();
        let mut fits: Vec<Fit> = self.columns.iter().map(|c| c.fit).collect();
        match width {
            None => render(&grid),
            Some(width) => {
                fit::fit(&mut grid, &mut fits, width);
                let text = render(&grid);
                fit::cut_lines(&text, width)
            }
        }
    }
}

/// Lines of cells (the header first), each line ending in a newline, without trailing spaces.
pub(super) fn render(grid: &[Vec<String>]) -> String {
    let widths = widths(grid);
    let mut out = String::new();
    for cells in grid {
        let mut line = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            line.push_str(cell);
            let pad = width - cell.chars().count() + GAP;
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The widest cell of each column.
pub(super) fn widths(grid: &[Vec<String>]) -> Vec<usize> {
    let columns = grid.first().map_or(0, Vec::len);
    (0..columns)
        .map(|i| grid.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect()
}

/// `1 run`, `2 runs`: a count with its noun, in the plural unless it is one.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut t = Table::new(&["ID", "STATUS"]);
        t.row(vec!["a-long-id".into(), "idle".into()]);
        t.row(vec!["b".into()]);
        assert_eq!(t.render(), "ID         STATUS\na-long-id  idle\nb\n",);
    }
}
