//! The writes to each image a profile saw, read one events part at a time
//! ([`each_part`]): each distinct (process, address, whether the
//! loader wrote, whether the page came from the file) once, with the
//! section and symbol the recording named there, so the image on disk can
//! be checked against the recording.
use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::{col, lit, PolarsResult};

use super::plan::{written_by_loader, Write};
use crate::profile::{
    read::Profile,
    scan::{each_part, number, text, Filters},
};

/// The writes to one image.
#[derive(Clone, Debug, Default)]
pub struct ImageWrites {
    pub writes: BTreeSet<Write>,
    /// The section and symbol the recording named at each written address.
    pub named: BTreeMap<u64, (String, String)>,
}

/// The writes to each image of `profile` whose path `select` accepts.
/// Shared mappings' write notifications are not copies and are left out.
///
/// # Errors
/// When a part cannot be scanned.
pub fn read(
    profile: &Profile,
    select: impl Fn(&str) -> bool,
) -> PolarsResult<BTreeMap<String, ImageWrites>> {
    let mut images: BTreeMap<String, ImageWrites> = BTreeMap::new();
    each_part(
        profile,
        &Filters::default(),
        |lf| {
            lf.filter(
                col("image")
                    .is_not_null()
                    .and(col("kind").neq(lit("write_notify"))),
            )
            .with_column((col("address") % lit(4096u64)).alias("in_page"))
            .group_by([
                col("image"),
                col("pid"),
                col("page"),
                col("in_page"),
                col("writer"),
                col("section"),
                col("symbol"),
                col("kind"),
            ])
            .agg([col("ts_ns").count().alias("faults")])
        },
        |df| {
            for i in 0..df.height() {
                let image = text(df, "image", i);
                if !select(&image) {
                    continue;
                }
                let vaddr = number(df, "page", i) + number(df, "in_page", i);
                let entry = images.entry(image).or_default();
                entry.writes.insert(Write {
                    pid: u32::try_from(number(df, "pid", i)).unwrap_or(u32::MAX),
                    vaddr,
                    loader: written_by_loader(&text(df, "writer", i)),
                    from_file: matches!(
                        text(df, "kind", i).as_str(),
                        "cow_copy_file" | "cow_fill_file"
                    ),
                });
                entry
                    .named
                    .entry(vaddr)
                    .or_insert_with(|| (text(df, "section", i), text(df, "symbol", i)));
            }
            Ok(())
        },
    )?;
    Ok(images)
}
