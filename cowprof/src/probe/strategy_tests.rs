//! Tests of the compatibility table and its checks.
use super::*;
use crate::probe::facts::{parse_version, KernelFacts};

#[test]
fn versions_parse() {
    assert_eq!(parse_version("6.12.117+deb12-cloud-amd64"), (6, 12));
    assert_eq!(parse_version("6.1.0-56-cloud-amd64"), (6, 1));
    assert_eq!(parse_version("6.18.44-fc-v445"), (6, 18));
    assert_eq!(parse_version(""), (0, 0));
}

#[test]
fn old_kernels_load_the_legacy_object_and_lose_only_the_tracepoint_strategy() {
    let features = |release: &str| -> Vec<&str> {
        KernelFacts::of_release(release)
            .legacy_fallbacks()
            .iter()
            .map(|r| r.feature)
            .collect()
    };
    assert_eq!(
        features("5.10.0-32-cloud-amd64"),
        [
            "BPF_MAP_TYPE_TASK_STORAGE",
            "the bpf_get_current_task_btf helper",
            "the bpf_find_vma helper"
        ]
    );
    assert_eq!(features("5.15.0-1-amd64"), ["the bpf_find_vma helper"]);
    assert!(features("6.1.0-57-cloud-amd64").is_empty());
    let old = KernelFacts::of_release("5.10.0-32-cloud-amd64");
    let reason = old
        .strategy_check(Strategy::Tracepoint, false)
        .reason
        .unwrap_or_default();
    assert!(reason.contains("bpf_task_pt_regs"), "{reason}");
    for strategy in [Strategy::Fentry, Strategy::Kprobe] {
        // Only the missing BTF of this test's facts stops them.
        let reason = old
            .strategy_check(strategy, false)
            .reason
            .unwrap_or_default();
        assert!(reason.contains("BTF"), "{strategy}: {reason}");
    }
}

#[test]
fn a_preemptible_kernel_rules_out_fentry_only() {
    let mut facts = KernelFacts::of_release("7.3.4+deb13-cloud-amd64");
    facts.preemption = Some(crate::kernel::preempt::Model {
        model: crate::kernel::preempt::Preemption::Lazy,
        source: "test",
    });
    let reason = facts
        .strategy_check(Strategy::Fentry, false)
        .reason
        .unwrap_or_default();
    assert!(
        reason.starts_with("the kernel preempts fentry programs (preempt=lazy): "),
        "{reason}"
    );
    for strategy in [Strategy::Kprobe, Strategy::Tracepoint] {
        let reason = facts
            .strategy_check(strategy, false)
            .reason
            .unwrap_or_default();
        assert!(!reason.contains("preempt"), "{strategy}: {reason}");
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
            // The tp_btf program before v7.0, its classic twin from then.
            for (version, name) in [
                ((6, 18), program.to_owned()),
                ((7, 0), format!("tp_{program}")),
            ] {
                assert!(
                    strategy.probes().any(|r| r.program == name
                        && r.required
                        && r.applies_to(version)
                        && r.min_kernel <= version),
                    "{strategy} lacks {name} on {version:?}"
                );
            }
        }
    }
}
