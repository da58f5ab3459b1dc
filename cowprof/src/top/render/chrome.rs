//! Everything around the body: header, sparklines, tabs, breadcrumb,
//! footer and the help screen.
use std::time::{Duration, Instant};

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Sparkline},
    Frame,
};

use super::Theme;
use crate::top::{
    app::{App, Level, VIEWS},
    keymap::{self, Mode},
    tables::{thousands, TableKind},
};

/// `d` as `HH:MM:SS`.
#[must_use]
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates shown as whole numbers"
)]
fn whole(x: f64) -> u64 {
    x.max(0.0).round() as u64
}

pub fn header(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme, now: Instant) {
    let report = app.report();
    // What must not be missed comes first, so a narrow screen keeps it.
    let mut first = vec![Span::styled("cowprof top", theme.title), Span::raw(" ")];
    if let Some(paused) = app.paused_for(now) {
        first.push(Span::styled(
            format!(" PAUSED {} ", clock(paused)),
            theme.warn,
        ));
        first.push(Span::raw(" "));
    }
    if let Some(length) = app.meta.replay_length_s {
        first.push(Span::raw(format!(
            "{:.1} s of {length:.1} s at {}x │ {}",
            app.elapsed().as_secs_f64(),
            app.meta.speed,
            app.meta.strategy
        )));
    } else {
        first.push(Span::raw(format!(
            "{} │ {}",
            clock(app.elapsed()),
            app.meta.strategy
        )));
    }
    if let Some(ended) = &app.meta.ended {
        first.push(Span::raw(format!(" │ {ended}")));
    }
    first.push(Span::raw(format!(" │ {}", app.meta.target)));
    let mut second = Vec::new();
    let lost = report.kernel.lost_events;
    if lost > 0 {
        second.push(Span::styled(
            format!(" LOST {} EVENTS ", thousands(lost)),
            theme.warn,
        ));
        second.push(Span::raw(" "));
    }
    let rate = app.rate();
    let copied_mib = rate.copies_per_s * 4096.0 / f64::from(1 << 20);
    second.push(Span::raw(format!(
        "COW {}/s  copied {copied_mib:.1} MiB/s  reuses {}/s  total COW {}  processes {}",
        thousands(whole(rate.cow_per_s)),
        thousands(whole(rate.reuses_per_s)),
        thousands(report.totals.cow_total()),
        thousands(report.total_processes as u64),
    )));
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}

pub fn sparklines(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let rows = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).split(area);
    let history = app.shown_history();
    let series: [(&str, Style, Vec<u64>); 2] = [
        (
            "copies/s",
            theme.copies,
            history.iter().map(|s| whole(s.copies_per_s)).collect(),
        ),
        (
            "reuses/s",
            theme.reuses,
            history.iter().map(|s| whole(s.reuses_per_s)).collect(),
        ),
    ];
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    for ((label, style, data), row) in series.into_iter().zip(rows.iter()) {
        let [name, line] =
            Layout::horizontal([Constraint::Length(10), Constraint::Min(1)]).areas(*row);
        frame.render_widget(Paragraph::new(label), name);
        let width = usize::from(line.width);
        let data = &data[data.len().saturating_sub(width)..];
        frame.render_widget(Sparkline::default().data(data).max(max).style(style), line);
    }
}

pub fn tabs(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let current = app.level().tab();
    let spans: Vec<Span<'_>> = VIEWS
        .iter()
        .enumerate()
        .flat_map(|(i, name)| {
            let text = format!(" {} {name} ", i + 1);
            let style = if i == current {
                theme.tab
            } else {
                Style::default()
            };
            [Span::styled(text, style), Span::raw(" ")]
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn breadcrumb(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let mut spans = vec![Span::styled(app.breadcrumb().join(" › "), theme.title)];
    if let Level::Table(kind) = app.level() {
        let sort = app.sort(*kind);
        if let Some(column) = kind.columns().get(sort.column) {
            let natural_down = column.numeric;
            let arrow = if natural_down == sort.inverted {
                "↑"
            } else {
                "↓"
            };
            spans.push(Span::raw(format!("  sort: {} {arrow}", column.name)));
        }
    }
    if app.editing || !app.filter.is_empty() {
        let cursor = if app.editing { "▏" } else { "" };
        spans.push(Span::raw(format!("  filter: {}{cursor}", app.filter)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn footer(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let text = if let Some(status) = &app.status {
        Line::from(Span::styled(status.clone(), theme.title))
    } else if app.editing {
        Line::from("type to filter · Enter keeps it · Esc clears it")
    } else {
        let mut hints = vec![
            "q:quit",
            "?:help",
            "1-6:view",
            "Enter:drill",
            "Esc:back",
            "s:sort",
            "/:filter",
            "Space:pause",
        ];
        match app.mode {
            Mode::Live => hints.extend(["e:export", "r:reset"]),
            Mode::Replay => hints.extend(["[]:seek", "+-:speed"]),
            Mode::Always => {}
        }
        Line::from(Span::styled(hints.join(" "), theme.dim))
    };
    frame.render_widget(Paragraph::new(text), area);
}

/// The help screen, generated from the keymap: one column, or two when
/// the screen is too short for one.
pub fn help(frame: &mut Frame<'_>, app: &App, theme: &Theme) {
    let entries = keymap::help(app.mode);
    let area = frame.area();
    let fits = entries.len() + 4 <= usize::from(area.height);
    let per_column = if fits {
        entries.len()
    } else {
        entries.len().div_ceil(2)
    };
    let width = area.width.min(if fits { 76 } else { 160 });
    let column_width = if fits {
        usize::from(width) - 2
    } else {
        usize::from(width.saturating_sub(3)) / 2
    };
    let cell = |i: usize| -> Vec<Span<'_>> {
        entries.get(i).map_or_else(Vec::new, |(keys, what)| {
            let what: String = what.chars().take(column_width.saturating_sub(12)).collect();
            vec![
                Span::styled(format!("{keys:>9}  "), theme.header),
                Span::raw(format!("{what:<w$}", w = column_width.saturating_sub(11))),
            ]
        })
    };
    let mut lines: Vec<Line<'_>> = (0..per_column)
        .map(|i| {
            let mut spans = cell(i);
            if !fits {
                spans.extend(cell(i + per_column));
            }
            Line::from(spans)
        })
        .collect();
    lines.push(Line::raw(
        "page map: · never written  ▒ written  █ hot (top tenth by faults)",
    ));
    let height = u16::try_from(lines.len() + 2)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys (? closes) "),
        ),
        rect,
    );
}

/// The name of the table `kind` for empty-table messages.
#[must_use]
pub fn nothing_yet(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Latency => "no faults timed yet",
        TableKind::Images => "no image page written yet",
        _ => "no COW faults yet",
    }
}
