//! Tests of the compatibility table and its checks.
use super::*;

#[test]
fn versions_parse() {
    assert_eq!(parse_version("6.12.117+deb12-cloud-amd64"), (6, 12));
    assert_eq!(parse_version("6.1.0-56-cloud-amd64"), (6, 1));
    assert_eq!(parse_version("6.18.44-fc-v445"), (6, 18));
    assert_eq!(parse_version(""), (0, 0));
}

#[test]
fn kernels_without_task_storage_or_find_vma_are_refused() {
    for (release, feature) in [
        ("5.10.223-cloud-amd64", "TASK_STORAGE"),
        ("5.15.0-1-amd64", "bpf_find_vma"),
    ] {
        let facts = KernelFacts::of_release(release);
        for strategy in Strategy::BY_PRIORITY {
            let checked = facts.strategy_check(strategy, false);
            assert!(!checked.ok, "{release} {strategy}");
            let reason = checked.reason.unwrap_or_default();
            assert!(reason.contains(feature), "{release} {strategy}: {reason}");
        }
    }
}

#[test]
fn every_strategy_has_required_rows_and_one_priority() {
    for strategy in Strategy::BY_PRIORITY {
        let rows: Vec<_> = strategy.probes().collect();
        assert!(rows.iter().any(|r| r.required), "{strategy}");
        assert!(rows.iter().all(|r| r.priority == strategy.priority()));
    }
    let mut priorities: Vec<u8> = Strategy::BY_PRIORITY.iter().map(|s| s.priority()).collect();
    priorities.dedup();
    assert_eq!(
        priorities,
        vec![1, 2, 3],
        "BY_PRIORITY is in priority order"
    );
}

#[test]
fn every_strategy_follows_descendants_and_counts_allocations() {
    for strategy in Strategy::BY_PRIORITY {
        for program in [
            "sched_process_fork",
            "sched_process_exit",
            "mm_page_alloc",
            "rss_stat",
        ] {
            assert!(
                strategy
                    .probes()
                    .any(|r| r.program == program && r.required),
                "{strategy} lacks {program}"
            );
        }
    }
}
