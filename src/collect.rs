//! `collect()` for B-tree maps and sets (`serde_json::Map` is one) by inserting each item.
//!
//! `FromIterator` for `BTreeMap`/`BTreeSet` stable-sorts its input before building the tree,
//! and every key/value type gets its own copy of that sort: ~5 KB of wasm each, a dozen of them
//! in the package (BENCHMARKS.md, "Package size"). The collections built here are small (a
//! record's fields, a store's collections and indexes), where inserting costs no more.

pub trait CollectInserted: Iterator + Sized {
    fn collect_inserted<C: Default + Extend<Self::Item>>(self) -> C {
        let mut collection = C::default();
        collection.extend(self);
        collection
    }
}

impl<I: Iterator> CollectInserted for I {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn equals_collect_and_keeps_the_last_value_of_a_key() {
        let pairs = [(3, "c"), (1, "a"), (3, "z"), (2, "b")];
        let inserted: BTreeMap<_, _> = pairs.into_iter().collect_inserted();
        let collected: BTreeMap<_, _> = pairs.into_iter().collect();
        assert_eq!(inserted, collected);
        assert_eq!(inserted[&3], "z");
        let set: BTreeSet<_> = [2, 1, 2].into_iter().collect_inserted();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), [1, 2]);
    }
}
