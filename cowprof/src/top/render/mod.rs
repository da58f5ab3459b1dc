//! Draws the app's state: chrome (header, sparklines, tabs, breadcrumb,
//! footer, help) and the body of the level shown. Reads the app; changes
//! only the viewport sizes the key handling needs.
mod body;
mod chrome;

use std::time::Instant;

use ratatui::{
    layout::{Constraint, Layout},
    style::{Color, Modifier, Style},
    Frame,
};

use super::app::App;

/// Styles, plain when `NO_COLOR` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub title: Style,
    pub header: Style,
    pub selected: Style,
    pub tab: Style,
    pub warn: Style,
    pub dim: Style,
    pub written: Style,
    pub hot: Style,
    pub copies: Style,
    pub reuses: Style,
}

impl Theme {
    /// Colors, unless `NO_COLOR` is set (to anything but the empty string).
    #[must_use]
    pub fn from_env() -> Self {
        Self::for_no_color(std::env::var_os("NO_COLOR").as_deref())
    }

    /// The theme for a `NO_COLOR` of `value` (<https://no-color.org>: set
    /// and not empty turns colors off).
    #[must_use]
    pub fn for_no_color(value: Option<&std::ffi::OsStr>) -> Self {
        if value.is_some_and(|v| !v.is_empty()) {
            Self::plain()
        } else {
            Self::color()
        }
    }

    /// Attributes only: bold, reversed, underlined.
    #[must_use]
    pub fn plain() -> Self {
        let bold = Style::default().add_modifier(Modifier::BOLD);
        Self {
            title: bold,
            header: Style::default().add_modifier(Modifier::UNDERLINED),
            selected: Style::default().add_modifier(Modifier::REVERSED),
            tab: Style::default().add_modifier(Modifier::REVERSED),
            warn: bold,
            dim: Style::default(),
            written: Style::default(),
            hot: bold,
            copies: Style::default(),
            reuses: Style::default(),
        }
    }

    #[must_use]
    pub fn color() -> Self {
        Self {
            title: Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            header: Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            selected: Style::default().add_modifier(Modifier::REVERSED),
            tab: Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            warn: Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
            dim: Style::default().fg(Color::DarkGray),
            written: Style::default().fg(Color::Yellow),
            hot: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            copies: Style::default().fg(Color::Red),
            reuses: Style::default().fg(Color::Green),
        }
    }
}

/// Draws one frame of `app`, `now` being the time shown for pauses.
pub fn draw(frame: &mut Frame<'_>, app: &mut App, theme: &Theme, now: Instant) {
    let [header, spark, tabs, crumb, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    chrome::header(frame, header, app, theme, now);
    chrome::sparklines(frame, spark, app, theme);
    chrome::tabs(frame, tabs, app, theme);
    chrome::breadcrumb(frame, crumb, app, theme);
    body::draw(frame, body, app, theme);
    chrome::footer(frame, footer, app, theme);
    if app.help {
        chrome::help(frame, app, theme);
    }
}

#[cfg(test)]
mod tests;
