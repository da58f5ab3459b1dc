//! The `advise` verb: reading, checking, advising and printing.
use std::{collections::BTreeMap, path::PathBuf};

use super::{
    image, ordering, plan,
    render::{self, ImageAdvice},
    writes,
};

use crate::{
    exit,
    profile::{read::Profile, ProfileError},
    resolve::elf::NotAttributed,
};

/// What `advise` is asked for.
#[derive(Clone, Debug)]
pub struct AdviseOptions {
    /// The profile.
    pub dir: PathBuf,
    /// Only images whose path is, ends with or contains this.
    pub image: Option<String>,
    /// Write the linker's ordering file here (one image).
    pub ordering_file: Option<PathBuf>,
    pub linker: ordering::Linker,
    /// Symbols listed per image.
    pub top: usize,
    pub format: super::AdviseFormat,
    /// Where separate debug files are looked for.
    pub debug_dirs: crate::resolve::symbols::DebugDirs,
}

/// Why `advise` cannot give its advice.
#[derive(Debug, thiserror::Error)]
pub enum AdviseError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("no image in {dir} matches {pattern:?}; the profile's images are: {images}")]
    NoImage {
        dir: PathBuf,
        pattern: String,
        images: String,
    },
    #[error("--ordering-file is for one image and {count} match; choose one with --image (the profile's images are: {images})")]
    ManyImages { count: usize, images: String },
    #[error("cannot read the image {path}: {reason}; advise reads the recorded images, so run it where the profile was recorded")]
    Image { path: String, reason: NotAttributed },
    #[error("{path} is not the file recorded: {detail}; advise it on the machine and build it was recorded with")]
    Changed { path: String, detail: String },
    #[error("cannot write {path}: {source}; check the directory is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AdviseError {
    /// The exit code of this error (documented in `advise --help`).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Profile(err) => err.exit_code(),
            Self::NoImage { .. } | Self::ManyImages { .. } => exit::USAGE,
            Self::Image { .. } | Self::Changed { .. } => exit::IMAGE,
            Self::Write { .. } => exit::OUTPUT,
        }
    }
}

fn matches(pattern: Option<&str>, image: &str) -> bool {
    pattern.is_none_or(|p| image == p || image.rsplit('/').next() == Some(p) || image.contains(p))
}

/// Checks that `facts` name what the recording named at each address.
fn check(
    path: &str,
    facts: &image::Facts,
    named: &BTreeMap<u64, (String, String)>,
) -> Result<(), AdviseError> {
    let mut by_name: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for s in &facts.symbols {
        by_name.entry(&s.name).or_default().push((s.addr, s.size));
    }
    let mut differ = 0usize;
    let mut example = None;
    for (vaddr, (section, symbol)) in named {
        let now_section = facts.section_at(*vaddr).map(|s| s.name.as_str());
        let section_differs =
            !section.is_empty() && section != "?" && now_section != Some(section.as_str());
        // A recorded symbol of the file that no longer covers the address.
        // (One without a size, such as `__TMC_LIST__`, is not among the
        // symbols the advisor keeps, and proves nothing.)
        let symbol_differs = by_name.get(symbol.as_str()).is_some_and(|places| {
            !places
                .iter()
                .any(|(addr, size)| *addr <= *vaddr && *vaddr < addr + size)
        });
        if section_differs || symbol_differs {
            differ += 1;
            example.get_or_insert_with(|| {
                let now_symbol = facts
                    .symbols
                    .iter()
                    .rev()
                    .find(|s| s.addr <= *vaddr && *vaddr < s.addr + s.size);
                format!(
                    "{vaddr:#x} was {section} {symbol}, is {} {}",
                    now_section.unwrap_or("?"),
                    now_symbol.map_or("", |s| s.name.as_str())
                )
            });
        }
    }
    match example {
        Some(example) => Err(AdviseError::Changed {
            path: path.to_owned(),
            detail: format!(
                "{differ} of {} written addresses lie elsewhere ({example})",
                named.len()
            ),
        }),
        None => Ok(()),
    }
}

/// The advice for the image at `path`, from what the profile saw there.
///
/// # Errors
/// When the image cannot be read or is not the file recorded.
fn advise_image(
    path: &str,
    found: &writes::ImageWrites,
    args: &AdviseOptions,
) -> Result<plan::Advice, AdviseError> {
    let linker = args.linker;
    let facts =
        image::Facts::open(std::path::Path::new(path), &args.debug_dirs).map_err(|reason| {
            AdviseError::Image {
                path: path.to_owned(),
                reason,
            }
        })?;
    check(path, &facts, &found.named)?;
    // The loader's own writes to its own image are its program's.
    let is_loader = plan::written_by_loader(path.rsplit('/').next().unwrap_or_default());
    let writes: Vec<plan::Write> = found
        .writes
        .iter()
        .map(|w| plan::Write {
            loader: w.loader && !is_loader,
            ..*w
        })
        .collect();
    Ok(plan::advise_for(&facts, &writes, linker.placement()))
}

/// The images `args` choose among those written to.
///
/// # Errors
/// When none matches, or several do and an ordering file is asked for.
fn choose<'a>(
    args: &AdviseOptions,
    all: &'a BTreeMap<String, writes::ImageWrites>,
) -> Result<Vec<&'a String>, AdviseError> {
    let chosen: Vec<&String> = all
        .keys()
        .filter(|i| matches(args.image.as_deref(), i))
        .collect();
    if chosen.is_empty() {
        return Err(AdviseError::NoImage {
            dir: args.dir.clone(),
            pattern: args.image.clone().unwrap_or_default(),
            images: if all.is_empty() {
                "none (nothing written to an image)".into()
            } else {
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        });
    }
    if args.ordering_file.is_some() && chosen.len() > 1 {
        return Err(AdviseError::ManyImages {
            count: chosen.len(),
            images: chosen
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(chosen)
}

/// Runs `advise` with `args`, printing to `out`.
///
/// # Errors
/// When the profile or an image chosen by `--image` cannot be read, or an
/// output cannot be written.
pub fn run(args: &AdviseOptions, out: &mut dyn std::io::Write) -> Result<(), AdviseError> {
    let profile = Profile::open(&args.dir)?;
    if !profile.complete() {
        eprintln!(
            "cowprof: warning: {} is partial: its recording did not end cleanly; advising from the {} events of its closed parts",
            args.dir.display(),
            profile.events
        );
    }
    let all = writes::read(&profile, |_| true)?;
    let chosen = choose(args, &all)?;
    let single = chosen.len() == 1;
    let mut advice = Vec::new();
    for path in chosen {
        // One image asked for fails with its error; among several, an
        // image that cannot be advised on is listed as skipped, and why.
        let (advice_for, skipped) = match advise_image(path, &all[path], args) {
            Ok(a) => (Some(a), None),
            Err(err) if single => return Err(err),
            Err(err) => (None, Some(err.to_string())),
        };
        advice.push(ImageAdvice {
            image: path.clone(),
            advice: advice_for,
            skipped,
        });
    }
    // Most pages to save first.
    advice.sort_by_key(|a| {
        std::cmp::Reverse(
            a.advice
                .as_ref()
                .map_or(0, |a| a.pages_now.saturating_sub(a.pages_predicted)),
        )
    });
    if let (Some(file), Some(first)) = (&args.ordering_file, advice.first()) {
        let hot = first.advice.as_ref().map_or(&[][..], |a| &a.hot[..]);
        let text = ordering::render(args.linker, &first.image, hot);
        crate::output::write_atomically(file, text.as_bytes()).map_err(|source| {
            AdviseError::Write {
                path: file.clone(),
                source,
            }
        })?;
    }
    let stdout = |e: std::io::Error| AdviseError::Write {
        path: "<stdout>".into(),
        source: e,
    };
    let text = match args.format {
        super::AdviseFormat::Json => {
            serde_json::to_string_pretty(&advice).map_err(|e| stdout(e.into()))? + "\n"
        }
        super::AdviseFormat::Text => render::text(
            &advice,
            args.top,
            args.ordering_file.as_deref(),
            args.linker,
        ),
    };
    out.write_all(text.as_bytes()).map_err(stdout)
}
