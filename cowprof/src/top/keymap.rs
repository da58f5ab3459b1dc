//! The keymap, as data: the key loop looks actions up here and the help
//! screen is generated from it, so the two cannot drift.

/// A key, independent of the terminal library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Char(char),
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Backspace,
    Tab,
    BackTab,
}

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Left,
    Right,
    Drill,
    Back,
    NextSort,
    PrevSort,
    InvertSort,
    Filter,
    Pause,
    Reset,
    Export,
    /// Show view N (0-based).
    View(usize),
    NextView,
    PrevView,
    SeekBack,
    SeekForward,
    Faster,
    Slower,
}

/// When a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Always,
    Live,
    Replay,
}

/// One binding: its keys, what it does, and its line of help.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub mode: Mode,
    pub help: &'static str,
}

const fn bind(keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        action,
        mode: Mode::Always,
        help,
    }
}

const fn live(keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        action,
        mode: Mode::Live,
        help,
    }
}

const fn replay(keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        action,
        mode: Mode::Replay,
        help,
    }
}

use Key::Char as C;

/// Every binding, in the order the help lists them.
pub const KEYMAP: &[Binding] = &[
    bind(&[C('q')], Action::Quit, "quit"),
    bind(&[C('?')], Action::Help, "show or hide this help"),
    bind(&[C('1')], Action::View(0), "processes"),
    bind(&[C('2')], Action::View(1), "mappings"),
    bind(
        &[C('3')],
        Action::View(2),
        "images: writable, written and never-written pages",
    ),
    bind(&[C('4')], Action::View(3), "page map of the selected image"),
    bind(&[C('5')], Action::View(4), "writers (functions)"),
    bind(&[C('6')], Action::View(5), "latency per kind"),
    bind(&[Key::Tab], Action::NextView, "next view"),
    bind(&[Key::BackTab], Action::PrevView, "previous view"),
    bind(&[Key::Up, C('k')], Action::Up, "move up"),
    bind(&[Key::Down, C('j')], Action::Down, "move down"),
    bind(
        &[Key::Left, C('h')],
        Action::Left,
        "page map: previous page",
    ),
    bind(&[Key::Right, C('l')], Action::Right, "page map: next page"),
    bind(&[Key::PageUp], Action::PageUp, "up one screen"),
    bind(&[Key::PageDown], Action::PageDown, "down one screen"),
    bind(&[Key::Home, C('g')], Action::Home, "first row"),
    bind(&[Key::End, C('G')], Action::End, "last row"),
    bind(
        &[Key::Enter],
        Action::Drill,
        "drill down: process → mappings → page map",
    ),
    bind(
        &[Key::Esc],
        Action::Back,
        "clear the filter, else go back up",
    ),
    bind(
        &[C('s'), C('.')],
        Action::NextSort,
        "sort by the next column",
    ),
    bind(&[C(',')], Action::PrevSort, "sort by the previous column"),
    bind(&[C('I')], Action::InvertSort, "invert the sort"),
    bind(
        &[C('/')],
        Action::Filter,
        "filter rows by text (Enter keeps it, Esc clears it)",
    ),
    bind(
        &[C(' ')],
        Action::Pause,
        "pause the view (collection goes on) or resume",
    ),
    live(&[C('r')], Action::Reset, "reset the counters"),
    live(
        &[C('e')],
        Action::Export,
        "export what was collected as a profile directory",
    ),
    replay(&[C('[')], Action::SeekBack, "seek back 10 s"),
    replay(&[C(']')], Action::SeekForward, "seek forward 10 s"),
    replay(&[C('+')], Action::Faster, "play twice as fast"),
    replay(&[C('-')], Action::Slower, "play half as fast"),
];

/// The action of `key` in `mode` (live or replay).
#[must_use]
pub fn action(key: Key, mode: Mode) -> Option<Action> {
    KEYMAP
        .iter()
        .find(|b| (b.mode == Mode::Always || b.mode == mode) && b.keys.contains(&key))
        .map(|b| b.action)
}

/// A key as the help shows it.
#[must_use]
pub fn key_name(key: Key) -> String {
    match key {
        Key::Char(' ') => "Space".to_owned(),
        Key::Char(c) => c.to_string(),
        Key::Up => "↑".to_owned(),
        Key::Down => "↓".to_owned(),
        Key::Left => "←".to_owned(),
        Key::Right => "→".to_owned(),
        Key::PageUp => "PgUp".to_owned(),
        Key::PageDown => "PgDn".to_owned(),
        Key::Home => "Home".to_owned(),
        Key::End => "End".to_owned(),
        Key::Enter => "Enter".to_owned(),
        Key::Esc => "Esc".to_owned(),
        Key::Backspace => "Backspace".to_owned(),
        Key::Tab => "Tab".to_owned(),
        Key::BackTab => "Shift-Tab".to_owned(),
    }
}

/// The help lines of `mode`: keys, then what they do.
#[must_use]
pub fn help(mode: Mode) -> Vec<(String, &'static str)> {
    KEYMAP
        .iter()
        .filter(|b| b.mode == Mode::Always || b.mode == mode)
        .map(|b| {
            let keys: Vec<String> = b.keys.iter().map(|k| key_name(*k)).collect();
            (keys.join(" "), b.help)
        })
        .collect()
}

/// A crossterm key press as a [`Key`].
#[must_use]
pub fn from_crossterm(event: &ratatui::crossterm::event::KeyEvent) -> Option<Key> {
    use ratatui::crossterm::event::{KeyCode, KeyEventKind, KeyModifiers};
    if event.kind == KeyEventKind::Release {
        return None;
    }
    if event.modifiers.contains(KeyModifiers::CONTROL) {
        // Ctrl-C quits as q does (raw mode turns it into a key).
        return matches!(event.code, KeyCode::Char('c')).then_some(Key::Char('q'));
    }
    Some(match event.code {
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_one_mode() {
        for mode in [Mode::Live, Mode::Replay] {
            let mut seen = std::collections::HashSet::new();
            for b in KEYMAP
                .iter()
                .filter(|b| b.mode == Mode::Always || b.mode == mode)
            {
                for k in b.keys {
                    assert!(seen.insert(*k), "{k:?} bound twice in {mode:?}");
                }
            }
        }
    }

    #[test]
    fn the_help_lists_every_binding_of_its_mode() {
        let live = help(Mode::Live);
        assert!(live.iter().any(|(k, h)| k == "e" && h.contains("export")));
        assert!(!live.iter().any(|(k, _)| k == "["));
        let replay = help(Mode::Replay);
        assert!(replay.iter().any(|(k, _)| k == "["));
        assert_eq!(action(Key::Char('j'), Mode::Live), Some(Action::Down));
        assert_eq!(action(Key::Char('e'), Mode::Replay), None);
    }
}
