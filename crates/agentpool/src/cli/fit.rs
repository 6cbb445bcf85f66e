//! Fitting a table to the terminal, and finding the terminal's width.
//!
//! When a table is wider than the terminal it gives up, in this order, only as much as it
//! must: ids are shortened to their unique tail, then columns are dropped (lowest rank first),
//! then text columns are cut in the middle with `…`, and as a last resort lines are cut. `--wide` (or
//! output that is not a terminal) prints everything.

use super::table::{GAP, widths};
use std::io::IsTerminal;

/// What a column gives up to fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    /// Holds UUID v7 ids: their tail is random, so `…` plus the tail still tells them apart.
    id: bool,
    /// Free text (names): may be cut in the middle with `…`.
    shrink: bool,
    /// Dropped when the table still does not fit; lowest rank first.
    drop: Option<u8>,
}

impl Fit {
    pub const FIXED: Fit = Fit {
        id: false,
        shrink: false,
        drop: None,
    };
    pub const ID: Fit = Fit {
        id: true,
        ..Fit::FIXED
    };
    pub const SHRINK: Fit = Fit {
        shrink: true,
        ..Fit::FIXED
    };

    /// Dropped when the table does not fit; columns of lower `rank` go first.
    pub const fn drop(rank: u8) -> Fit {
        Fit {
            drop: Some(rank),
            ..Fit::FIXED
        }
    }

    /// This column, also dropped (at `rank`) if shortening is not enough.
    pub const fn or_drop(self, rank: u8) -> Fit {
        Fit {
            drop: Some(rank),
            ..self
        }
    }
}

/// Characters of an id kept when shortened: the last group of a UUID.
const ID_TAIL: usize = 12;
/// A cut text column keeps at least this many characters (or its header's width).
const MIN_SHRUNK: usize = 8;

/// Shortens, drops and cuts columns of `grid` (header row first) until it fits in `width`.
pub(super) fn fit(grid: &mut [Vec<String>], fits: &mut Vec<Fit>, width: usize) {
    if total(grid) <= width {
        return;
    }
    shorten_ids(grid, fits);
    while total(grid) > width && drop_one(grid, fits) {}
    while total(grid) > width && shrink_one(grid, fits, total(grid) - width) {}
}

/// Cuts each line of `text` to `width` characters: the guarantee when nothing else fits.
pub(super) fn cut_lines(text: &str, width: usize) -> String {
    text.lines()
        .map(|l| {
            l.chars()
                .take(width)
                .collect::<String>()
                .trim_end()
                .to_owned()
                + "\n"
        })
        .collect()
}

/// The width of the rendered table.
fn total(grid: &[Vec<String>]) -> usize {
    let w = widths(grid);
    w.iter().sum::<usize>() + GAP * w.len().saturating_sub(1)
}

fn shorten_ids(grid: &mut [Vec<String>], fits: &[Fit]) {
    for (i, _) in fits.iter().enumerate().filter(|(_, f)| f.id) {
        for row in grid.iter_mut().skip(1) {
            let chars: Vec<char> = row[i].chars().collect();
            if chars.len() > ID_TAIL + 1 {
                row[i] = std::iter::once('…')
                    .chain(chars[chars.len() - ID_TAIL..].iter().copied())
                    .collect();
            }
        }
    }
}

/// Drops the droppable column of lowest rank; `false` when none is left.
fn drop_one(grid: &mut [Vec<String>], fits: &mut Vec<Fit>) -> bool {
    let Some(i) = (0..fits.len())
        .filter(|&i| fits[i].drop.is_some())
        .min_by_key(|&i| fits[i].drop)
    else {
        return false;
    };
    fits.remove(i);
    for row in grid.iter_mut() {
        row.remove(i);
    }
    true
}

/// Cuts the widest text column by up to `excess` characters; `false` when none can shrink.
fn shrink_one(grid: &mut [Vec<String>], fits: &[Fit], excess: usize) -> bool {
    let widths = widths(grid);
    let floor = |i: usize| grid[0][i].chars().count().max(MIN_SHRUNK);
    let Some(i) = (0..fits.len())
        .filter(|&i| fits[i].shrink && widths[i] > floor(i))
        .max_by_key(|&i| widths[i])
    else {
        return false;
    };
    let target = widths[i].saturating_sub(excess).max(floor(i));
    for row in grid.iter_mut().skip(1) {
        row[i] = cut(&row[i], target);
    }
    true
}

/// `text` in at most `width` characters, its middle replaced by `…` when cut: generated names
/// (`<pool>-<id tail>`) differ only at the end, so both ends are kept.
fn cut(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_owned();
    }
    let kept = width.saturating_sub(1);
    let tail = kept / 2;
    let head = kept - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// The width tables must fit: `None` (no limit) with `--wide` or when stdout is not a
/// terminal, else `COLUMNS` when it holds a width, else the terminal's.
pub fn output_width(wide: bool) -> Option<usize> {
    if wide {
        return None;
    }
    let columns = std::env::var("COLUMNS").ok();
    if let Some(width) = columns.as_deref().and_then(parse_columns) {
        return Some(width);
    }
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0))
}

/// A positive width; anything else is ignored, as an unset `COLUMNS` would be.
fn parse_columns(text: &str) -> Option<usize> {
    text.trim().parse().ok().filter(|&w| w > 0)
}

#[cfg(test)]
#[path = "fit_tests.rs"]
mod tests;
