//! `cowprof report DIR`: a profile's views as a table, JSON or CSV, and
//! `--diff OTHER` to compare two profiles.
use std::{collections::BTreeMap, io::Write};

use serde::Serialize;

use super::{
    offline::{self, Filters, Offline},
    read::Profile,
    ProfileError,
};
use crate::{
    cli::{Format, ReportArgs},
    report::Row,
    sink::tables,
    state::View,
};

/// One row of a comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub key: String,
    /// COW faults in the baseline and in the profile.
    pub before: u64,
    pub after: u64,
    pub delta: i64,
}

/// Everything `report --format json` prints.
#[derive(Serialize)]
struct Json<'a> {
    profile: &'a str,
    complete: bool,
    events: u64,
    #[serde(flatten)]
    offline: &'a Offline,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    diff: BTreeMap<View, Vec<Change>>,
}

fn output_error(err: std::io::Error) -> ProfileError {
    ProfileError::Write {
        path: "<stdout>".into(),
        source: err,
    }
}

/// Opens a profile, saying in one line on stderr when it is partial.
fn open(dir: &std::path::Path) -> Result<Profile, ProfileError> {
    let profile = Profile::open(dir)?;
    if !profile.complete() {
        eprintln!(
            "cowprof: warning: {} is partial: its recording did not end cleanly, so the part being written is missing; reporting the {} events of its {} closed parts",
            dir.display(),
            profile.events,
            profile.parts.len()
        );
    }
    Ok(profile)
}

/// Rows of `after` against `before`, largest change first.
fn compare(before: &[Row], after: &[Row]) -> Vec<Change> {
    let mut keys: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in before {
        keys.entry(&r.key).or_default().0 += r.counts.cow_total();
    }
    for r in after {
        keys.entry(&r.key).or_default().1 += r.counts.cow_total();
    }
    let mut changes: Vec<Change> = keys
        .into_iter()
        .filter(|(_, (b, a))| a != b)
        .map(|(key, (before, after))| Change {
            key: key.to_owned(),
            before,
            after,
            delta: i64::try_from(after).unwrap_or(i64::MAX)
                - i64::try_from(before).unwrap_or(i64::MAX),
        })
        .collect();
    changes.sort_by(|a, b| {
        b.delta
            .unsigned_abs()
            .cmp(&a.delta.unsigned_abs())
            .then_with(|| a.key.cmp(&b.key))
    });
    changes
}

/// Runs `report` with `args`, printing to `out`.
///
/// # Errors
/// When a profile cannot be read or the output written.
pub fn run(args: &ReportArgs, out: &mut dyn Write) -> Result<(), ProfileError> {
    let filters = Filters {
        pid: args.pid,
        comm: args.comm.clone(),
        image: args.image.clone(),
        kind: args.kind,
        since: args.since,
        until: args.until,
    };
    let profile = open(&args.dir)?;
    let mut views = offline::views(&profile, &args.by, &filters)?;
    let mut diff = BTreeMap::new();
    if let Some(other) = &args.diff {
        let base = offline::views(&open(other)?, &args.by, &filters)?;
        let processes = |o: &Offline| -> Vec<Row> {
            o.processes
                .iter()
                .map(|p| Row {
                    key: format!("{} {}", p.pid, p.comm),
                    counts: p.counts,
                    ..Row::default()
                })
                .collect()
        };
        for view in &args.by {
            let (before, after) = if *view == View::Process {
                (processes(&base), processes(&views))
            } else {
                let get = |o: &Offline| o.views.get(view).cloned().unwrap_or_default();
                (get(&base), get(&views))
            };
            let mut changes = compare(&before, &after);
            if let Some(n) = args.top {
                changes.truncate(n);
            }
            diff.insert(*view, changes);
        }
    }
    if let Some(n) = args.top {
        offline::keep_top(&mut views, n);
    }
    let text = match args.format {
        Format::Json => {
            let json = Json {
                profile: &args.dir.to_string_lossy(),
                complete: profile.complete(),
                events: profile.events,
                offline: &views,
                diff,
            };
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
        }
        Format::Csv => csv(&views, &diff, args.diff.is_some()).map_err(output_error)?,
        Format::Table => table(&views, &diff, args.diff.is_some()),
    };
    out.write_all(text.as_bytes()).map_err(output_error)
}

fn table(views: &Offline, diff: &BTreeMap<View, Vec<Change>>, diffing: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if diffing {
        for (view, changes) in diff {
            let _ = writeln!(
                out,
                "{:>10} {:>10} {:>10}  {}",
                "BEFORE",
                "AFTER",
                "DELTA",
                view.name().to_uppercase()
            );
            for c in changes {
                let _ = writeln!(
                    out,
                    "{:>10} {:>10} {:>+10}  {}",
                    c.before, c.after, c.delta, c.key
                );
            }
            out.push('\n');
        }
        return out;
    }
    tables::processes(&mut out, &views.processes, &views.totals);
    tables::views(&mut out, &views.views);
    tables::waste(&mut out, &views.waste);
    out
}

fn csv(
    views: &Offline,
    diff: &BTreeMap<View, Vec<Change>>,
    diffing: bool,
) -> std::io::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    if diffing {
        w.write_record(["view", "key", "before", "after", "delta"])?;
        for (view, changes) in diff {
            for c in changes {
                w.write_record([
                    view.name(),
                    &c.key,
                    &c.before.to_string(),
                    &c.after.to_string(),
                    &c.delta.to_string(),
                ])?;
            }
        }
    } else {
        let kinds = cowprof_common::Kind::ALL.map(cowprof_common::Kind::name);
        let mut header = vec!["view", "key"];
        header.extend(kinds);
        header.extend(["copies", "processes", "first_writer"]);
        w.write_record(&header)?;
        let mut record = |view: &str, key: &str, r: &Row| {
            let mut fields = vec![view.to_owned(), key.to_owned()];
            fields.extend(
                cowprof_common::Kind::ALL
                    .iter()
                    .map(|k| r.counts.get(*k).to_string()),
            );
            fields.extend([
                r.copies.to_string(),
                r.processes.to_string(),
                r.first_writer.clone(),
            ]);
            w.write_record(&fields)
        };
        for p in &views.processes {
            let row = Row {
                copies: p.counts.copies(),
                counts: p.counts,
                processes: 1,
                first_writer: p.comm.clone(),
                ..Row::default()
            };
            record("process", &p.pid.to_string(), &row)?;
        }
        for (view, rows) in &views.views {
            for r in rows {
                record(view.name(), &r.key, r)?;
            }
        }
    }
    let bytes = w.into_inner().map_err(::csv::IntoInnerError::into_error)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
