//! The body of the screen: a table, the page map, or the latency view.
use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Bar, BarChart, BarGroup, Block, Borders, Paragraph, Row, Table},
    Frame,
};

use super::{chrome::nothing_yet, Theme};
use crate::top::{
    app::{App, Level},
    pagemap::{CellState, PageMap},
    tables::{thousands, Cell, TableKind},
};

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App, theme: &Theme) {
    match app.level().clone() {
        Level::Table(TableKind::Latency) => {
            let [table, chart] =
                Layout::vertical([Constraint::Length(8), Constraint::Min(3)]).areas(area);
            self::table(frame, table, app, theme, TableKind::Latency);
            latency_chart(frame, chart, app, theme);
        }
        Level::Table(kind) => self::table(frame, area, app, theme, kind),
        Level::PageMap(image) => page_map(frame, area, app, theme, image.as_ref()),
    }
}

/// The first row to show so that `cursor` is on screen.
fn offset(cursor: usize, height: usize) -> usize {
    (cursor + 1).saturating_sub(height.max(1))
}

fn table(frame: &mut Frame<'_>, area: Rect, app: &mut App, theme: &Theme, kind: TableKind) {
    let level = Level::Table(kind);
    let table = app.table(kind);
    let height = usize::from(area.height.saturating_sub(1));
    if kind != TableKind::Latency {
        app.viewport_rows = height;
    }
    if table.is_empty() {
        let what = if app.filter.is_empty() {
            nothing_yet(kind)
        } else {
            "no row matches the filter"
        };
        frame.render_widget(Paragraph::new(Span::styled(what, theme.dim)), area);
        return;
    }
    let cursor = app.cursor(&level, &table);
    let first = offset(cursor, height);
    let sort = app.sort(kind);
    let header = Row::new(table.columns.iter().enumerate().map(|(i, c)| {
        let mut name = c.name.to_owned();
        if i == sort.column {
            name.push(if sort.inverted == c.numeric {
                '↑'
            } else {
                '↓'
            });
        }
        let line = if c.numeric {
            Line::from(name).right_aligned()
        } else {
            Line::from(name)
        };
        ratatui::widgets::Cell::from(line)
    }))
    .style(theme.header);
    let widths: Vec<Constraint> = table
        .columns
        .iter()
        .map(|c| {
            if c.width == 0 {
                Constraint::Fill(1)
            } else {
                Constraint::Length(c.width)
            }
        })
        .collect();
    // The room each column gets, to cut long names at their start (a
    // path's file name and section matter more than its directories).
    let room: Vec<usize> = Layout::horizontal(widths.clone())
        .spacing(1)
        .split(area)
        .iter()
        .map(|r| usize::from(r.width))
        .collect();
    let rows = (first..table.len().min(first + height)).map(|i| {
        let cells = table
            .cells(i)
            .into_iter()
            .zip(&room)
            .enumerate()
            .map(|(col, (c, room))| {
                let text = c.show();
                ratatui::widgets::Cell::from(match &c {
                    Cell::Text(_) if col == 0 => Line::from(keep_end(&text, *room)),
                    Cell::Text(_) => Line::from(text),
                    _ => Line::from(text).right_aligned(),
                })
            });
        let style = if i == cursor {
            theme.selected
        } else {
            Style::default()
        };
        Row::new(cells).style(style)
    });
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        area,
    );
}

/// `text` in at most `room` columns, its start replaced by `…` if cut.
fn keep_end(text: &str, room: usize) -> String {
    let chars = text.chars().count();
    if chars <= room || room == 0 {
        return text.to_owned();
    }
    let mut out = String::from("…");
    out.extend(text.chars().skip(chars - (room - 1)));
    out
}

fn glyph(state: CellState) -> &'static str {
    match state {
        CellState::Untouched => "·",
        CellState::Written => "▒",
        CellState::Hot => "█",
    }
}

fn page_map(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &mut App,
    theme: &Theme,
    image: Option<&String>,
) {
    let Some(image) = app.page_map_image(image) else {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "no image page written yet: pick an image in view 3",
                theme.dim,
            )),
            area,
        );
        return;
    };
    let [grid, details] = Layout::vertical([Constraint::Min(2), Constraint::Length(4)]).areas(area);
    // Cells a line: a multiple of 8 that fits, at least 8.
    let cols = (usize::from(grid.width).saturating_sub(2) / 8 * 8).max(8);
    let height = usize::from(grid.height);
    app.page_cols = cols;
    app.viewport_rows = height;
    let level = app.level().clone();
    let map = app.page_map(&image);
    if map.pages.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!("{image}: no writable page known"),
                theme.dim,
            )),
            area,
        );
        return;
    }
    let cursor = app.page_cursor(&level, &map);
    let first = offset(map.line_of(cursor, cols), height);
    let style = |state| match state {
        CellState::Untouched => theme.dim,
        CellState::Written => theme.written,
        CellState::Hot => theme.hot,
    };
    let mut lines = Vec::with_capacity(height);
    let mut line = 0;
    'sections: for s in &map.sections {
        if line >= first + height {
            break;
        }
        let section_lines = 1 + s.len.div_ceil(cols);
        if line + section_lines <= first {
            line += section_lines;
            continue;
        }
        if line >= first {
            lines.push(Line::from(Span::styled(
                format!(
                    "{}  {} pages: {} written, {} hot, {} never",
                    s.name,
                    thousands(s.len as u64),
                    thousands(s.written as u64),
                    thousands(s.hot as u64),
                    thousands((s.len - s.written) as u64)
                ),
                theme.header,
            )));
        }
        line += 1;
        for start in (s.first..s.first + s.len).step_by(cols) {
            if line >= first + height {
                break 'sections;
            }
            if line >= first {
                let end = (start + cols).min(s.first + s.len);
                let spans: Vec<Span<'_>> = (start..end)
                    .map(|i| {
                        let state = map.state(i);
                        let st = if i == cursor {
                            theme.selected
                        } else {
                            style(state)
                        };
                        Span::styled(glyph(state), st)
                    })
                    .collect();
                let mut row = vec![Span::raw("  ")];
                row.extend(spans);
                lines.push(Line::from(row));
            }
            line += 1;
        }
    }
    frame.render_widget(Paragraph::new(lines), grid);
    page_details(frame, details, &map, cursor, theme);
}

fn page_details(
    frame: &mut Frame<'_>,
    area: Rect,
    map: &PageMap<'_>,
    cursor: usize,
    theme: &Theme,
) {
    let Some(page) = map.pages.get(cursor) else {
        return;
    };
    let never = map.pages.iter().filter(|p| !p.written).count();
    let what = if page.written {
        format!(
            "page {:#x} in {}: {} faults by {} processes; symbol {}",
            page.page,
            page.section,
            thousands(page.faults),
            page.processes,
            if page.symbol.is_empty() {
                "?"
            } else {
                &page.symbol
            },
        )
    } else {
        format!("page {:#x} in {}: never written", page.page, page.section)
    };
    let writer = if page.written {
        format!("first writer: {}", page.first_writer)
    } else {
        String::new()
    };
    let lines = vec![
        Line::from(Span::styled(what, theme.title)),
        Line::from(writer),
        Line::from(Span::styled(
            format!(
                "{}: {} writable pages, {} never written · ▒ written █ hot ({}+ faults)",
                map.image,
                thousands(map.pages.len() as u64),
                thousands(never as u64),
                if map.hot == u64::MAX {
                    "-".to_owned()
                } else {
                    thousands(map.hot)
                }
            ),
            theme.dim,
        )),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP)),
        area,
    );
}

/// A bucket bound as a short label: 1µ, 512µ, 1m, 2s.
fn bound(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000_000 => format!("{}s", n / 1_000_000_000),
        n if n >= 1_000_000 => format!("{}m", n / 1_000_000),
        n => format!("{}µ", n / 1000),
    }
}

fn latency_chart(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    if app.report().latency.is_empty() && app.report().totals.all() > 0 {
        // Faults, but no latency: it is opt-in.
        frame.render_widget(
            Paragraph::new(
                "Latency is not measured: run `cowprof top --latency` (or record with --latency).",
            )
            .style(theme.dim)
            .block(Block::default().borders(Borders::TOP)),
            area,
        );
        return;
    }
    let level = Level::Table(TableKind::Latency);
    let table = app.table(TableKind::Latency);
    let Some(kind) = table.key(app.cursor(&level, &table)) else {
        return;
    };
    let Some(buckets) = app.report().latency_histogram.get(kind.as_str()) else {
        return;
    };
    let bars: Vec<Bar<'_>> = buckets
        .iter()
        .map(|(upper, count)| {
            Bar::default()
                .value(*count)
                .text_value(if *count == 0 {
                    String::new()
                } else {
                    thousands(*count)
                })
                .label(Line::from(format!("<{}", bound(*upper))))
        })
        .collect();
    let n = u16::try_from(bars.len().max(1)).unwrap_or(u16::MAX);
    let width = (area.width.saturating_sub(2) / n)
        .saturating_sub(1)
        .clamp(3, 9);
    frame.render_widget(
        BarChart::default()
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .title(format!(" {kind} latency, faults per bucket ")),
            )
            .data(BarGroup::default().bars(&bars))
            .bar_width(width)
            .bar_gap(1)
            .bar_style(theme.copies)
            .value_style(theme.selected),
        area,
    );
}
