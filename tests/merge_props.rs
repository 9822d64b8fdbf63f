//! Property tests of the shared merge and clock (docs/protocol.md): the merge is commutative,
//! associative and idempotent, and the clock never goes backwards.
#![cfg(not(target_arch = "wasm32"))]

use mana_sync::clock::{Clock, Hlc};
use mana_sync::merge::{apply, merge, RecordState};
use mana_sync::protocol::{Change, FieldChange, Op};
use proptest::prelude::*;
use serde_json::{json, Value};

const FIELDS: &[&str] = &["title", "body", "done", "spaceId"];

fn hlc_strategy() -> impl Strategy<Value = Hlc> {
    // Few millis, counters and nodes so that equal field timestamps happen often.
    (0u64..6, 0u16..3, 0u64..3)
        .prop_map(|(ms, c, n)| Hlc::new(1_700_000_000_000 + ms, c, n).unwrap())
}

fn value_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..4).prop_map(Value::from),
        "[ab]{0,2}".prop_map(Value::from),
        Just(json!(1.0)),
        Just(json!({"k": [1, "x"]})),
    ]
}

fn change_strategy() -> impl Strategy<Value = Change> {
    let actor = prop_oneof![
        Just(None),
        Just(Some(json!({"kind": "ai"}))),
        Just(Some(json!({"kind": "user"})))
    ];
    (
        0u8..3,
        hlc_strategy(),
        prop::collection::btree_map(
            0usize..FIELDS.len(),
            (value_strategy(), hlc_strategy()),
            1..4,
        ),
        actor,
    )
        .prop_map(|(op, at, fields, actor)| {
            let mut c = Change {
                event_id: "0190a6f0-0000-7000-8000-000000000001".into(),
                table: "notes".into(),
                id: "r1".into(),
                op: Op::Insert,
                data: None,
                fields: None,
                deleted_at: None,
                updated_at: None,
                schema_version: None,
                actor,
                space_id: None,
                seq: None,
            };
            match op {
                0 => {
                    c.data = Some(
                        fields
                            .iter()
                            .map(|(f, (v, _))| (FIELDS[*f].to_string(), v.clone()))
                            .collect(),
                    );
                    c.updated_at = Some(at.to_string());
                }
                1 => {
                    c.op = Op::Update;
                    c.fields = Some(
                        fields
                            .iter()
                            .map(|(f, (v, t))| {
                                (
                                    FIELDS[*f].to_string(),
                                    FieldChange {
                                        value: v.clone(),
                                        updated_at: t.to_string(),
                                        base: None,
                                    },
                                )
                            })
                            .collect(),
                    );
                }
                _ => {
                    c.op = Op::Delete;
                    c.deleted_at = Some(at.to_string());
                }
            }
            c.validate().expect("generated changes are valid");
            c
        })
}

fn fold(changes: &[Change]) -> RecordState {
    changes
        .iter()
        .fold(RecordState::default(), |s, c| apply(s, c).unwrap().0)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_order_gives_the_same_state(
        (changes, perm) in prop::collection::vec(change_strategy(), 1..8)
            .prop_flat_map(|cs| { let n = cs.len(); (Just(cs), Just((0..n).collect::<Vec<_>>()).prop_shuffle()) })
    ) {
        let shuffled: Vec<Change> = perm.iter().map(|&i| changes[i].clone()).collect();
        prop_assert_eq!(fold(&changes), fold(&shuffled));
    }

    #[test]
    fn any_grouping_gives_the_same_state(
        a in prop::collection::vec(change_strategy(), 0..4),
        b in prop::collection::vec(change_strategy(), 0..4),
        c in prop::collection::vec(change_strategy(), 0..4),
    ) {
        let (sa, sb, sc) = (fold(&a), fold(&b), fold(&c));
        let left = merge(merge(sa.clone(), &sb), &sc);
        let right = merge(sa, &merge(sb, &sc));
        prop_assert_eq!(&left, &right);
        // The state-based join agrees with applying every change in sequence.
        let all: Vec<Change> = a.iter().chain(&b).chain(&c).cloned().collect();
        prop_assert_eq!(left, fold(&all));
    }

    #[test]
    fn duplicates_change_nothing(
        changes in prop::collection::vec(change_strategy(), 1..8),
        dup_idx in prop::collection::vec(any::<prop::sample::Index>(), 1..8),
    ) {
        let once = fold(&changes);
        let mut with_dups = changes.clone();
        for i in dup_idx {
            with_dups.push(changes[i.index(changes.len())].clone());
        }
        prop_assert_eq!(&fold(&with_dups), &once);
        prop_assert_eq!(merge(once.clone(), &once), once);
    }

    #[test]
    fn clock_is_monotonic_under_a_wall_clock_that_jumps_back(
        steps in prop::collection::vec((0u64..2_000_000, any::<bool>(), hlc_strategy()), 1..200)
    ) {
        let mut clock = Clock::new(7);
        let mut last: Option<Hlc> = None;
        let mut last_str = String::new();
        for (wall, observe, remote) in steps {
            if observe {
                clock.observe(&remote);
                let next = clock.now(1_700_000_000_000 + wall).unwrap();
                prop_assert!(next > remote);
            }
            let t = clock.now(1_700_000_000_000 + wall).unwrap();
            if let Some(prev) = last {
                prop_assert!(t > prev);
                // String order is the same as the causal order.
                prop_assert!(t.to_string() > last_str);
            }
            prop_assert_eq!(Hlc::parse(&t.to_string()).unwrap(), t);
            last_str = t.to_string();
            last = Some(t);
        }
    }

    #[test]
    fn hlc_string_order_equals_value_order(a in any::<(u64, u16, u64)>(), b in any::<(u64, u16, u64)>()) {
        let ha = Hlc::new(a.0 % (mana_sync::clock::MAX_MILLIS + 1), a.1, a.2).unwrap();
        let hb = Hlc::new(b.0 % (mana_sync::clock::MAX_MILLIS + 1), b.1, b.2).unwrap();
        prop_assert_eq!(ha.cmp(&hb), ha.to_string().cmp(&hb.to_string()));
    }
}
