//! The pending queue as the engine sees it during one round: the rows read at its start,
//! cut into push batches of one app each, and what an acknowledgement does to the rows (a
//! row whose every change is acknowledged is deleted; a partly acknowledged one is rewritten
//! with the rest). Acknowledging is by row and position, so a write made while its record's
//! push is in flight — a new change in a new row — stays pending until its own push.

use crate::protocol::Change;

/// One `_pendingChanges` row: its key and its changes in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub key: u64,
    pub changes: Vec<Change>,
}

/// What to do to a pending row once a push is acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub enum RowEdit {
    Delete(u64),
    /// Rewrite the row with the changes still unacknowledged.
    Replace {
        key: u64,
        changes: Vec<Change>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unsent,
    InFlight,
    Acked,
    /// Its collection belongs to no app of this engine: it stays pending, unsent.
    Orphan,
}

#[derive(Debug, Clone)]
pub struct Outbox {
    rows: Vec<PendingRow>,
    /// The app of every change, `None` for an orphan.
    apps: Vec<Vec<Option<String>>>,
    marks: Vec<Vec<Mark>>,
}

impl Outbox {
    pub fn new(rows: Vec<PendingRow>, app_of: impl Fn(&str) -> Option<String>) -> Outbox {
        let apps: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| r.changes.iter().map(|c| app_of(&c.table)).collect())
            .collect();
        let marks = apps
            .iter()
            .map(|a| {
                a.iter()
                    .map(|app| {
                        if app.is_some() {
                            Mark::Unsent
                        } else {
                            Mark::Orphan
                        }
                    })
                    .collect()
            })
            .collect();
        Outbox { rows, apps, marks }
    }

    fn positions(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.marks
            .iter()
            .enumerate()
            .flat_map(|(r, m)| (0..m.len()).map(move |i| (r, i)))
    }

    /// Changes not yet acknowledged nor orphaned.
    pub fn unsent(&self) -> usize {
        self.positions()
            .filter(|&(r, i)| self.marks[r][i] == Mark::Unsent)
            .count()
    }

    /// The next batch: up to `limit` unsent changes of the first unsent change's app, in
    /// queue order. They are in flight until [`Outbox::ack`] or [`Outbox::unsend`].
    pub fn next_batch(&mut self, limit: usize) -> Option<(String, Vec<Change>)> {
        let (r0, i0) = self
            .positions()
            .find(|&(r, i)| self.marks[r][i] == Mark::Unsent)?;
        let app = self.apps[r0][i0]
            .clone()
            .expect("unsent changes have an app");
        let picked: Vec<(usize, usize)> = self
            .positions()
            .filter(|&(r, i)| {
                self.marks[r][i] == Mark::Unsent && self.apps[r][i].as_deref() == Some(&app)
            })
            .take(limit.max(1))
            .collect();
        let changes = picked
            .iter()
            .map(|&(r, i)| {
                self.marks[r][i] = Mark::InFlight;
                self.rows[r].changes[i].clone()
            })
            .collect();
        Some((app, changes))
    }

    /// The batch in flight was not acknowledged: it will be sent again.
    pub fn unsend(&mut self) {
        for m in self.marks.iter_mut().flatten() {
            if *m == Mark::InFlight {
                *m = Mark::Unsent;
            }
        }
    }

    /// The batch in flight was acknowledged: the edits that remove it from the rows.
    pub fn ack(&mut self) -> Vec<RowEdit> {
        let mut edits = Vec::new();
        for (r, marks) in self.marks.iter_mut().enumerate() {
            if !marks.contains(&Mark::InFlight) {
                continue;
            }
            for m in marks.iter_mut() {
                if *m == Mark::InFlight {
                    *m = Mark::Acked;
                }
            }
            let key = self.rows[r].key;
            if marks.iter().all(|m| *m == Mark::Acked) {
                edits.push(RowEdit::Delete(key));
            } else {
                let changes = self.rows[r]
                    .changes
                    .iter()
                    .zip(marks.iter())
                    .filter(|(_, m)| **m != Mark::Acked)
                    .map(|(c, _)| c.clone())
                    .collect();
                edits.push(RowEdit::Replace { key, changes });
            }
        }
        edits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Op;

    fn change(table: &str, n: usize) -> Change {
        Change {
            event_id: format!("0190a6f0-0000-7000-8000-{n:012}"),
            table: table.into(),
            id: format!("r{n}"),
            op: Op::Delete,
            data: None,
            fields: None,
            deleted_at: Some("2026-11-25T10:00:00.000Z-0000-0000000000000001".into()),
            updated_at: None,
            schema_version: None,
            actor: None,
            space_id: None,
            seq: None,
        }
    }

    fn app_of(t: &str) -> Option<String> {
        match t {
            "notes" => Some("notes".into()),
            "tasks" => Some("todo".into()),
            _ => None,
        }
    }

    #[test]
    fn batches_are_per_app_in_order_and_acks_rewrite_rows() {
        let rows = vec![
            PendingRow {
                key: 1,
                changes: vec![change("notes", 0), change("tasks", 1), change("notes", 2)],
            },
            PendingRow {
                key: 2,
                changes: vec![change("notes", 3), change("gone", 4)],
            },
        ];
        let mut ob = Outbox::new(rows, app_of);
        assert_eq!(ob.unsent(), 4);
        let (app, batch) = ob.next_batch(2).unwrap();
        assert_eq!(app, "notes");
        assert_eq!(
            batch.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["r0", "r2"]
        );
        let edits = ob.ack();
        assert_eq!(
            edits,
            [RowEdit::Replace {
                key: 1,
                changes: vec![change("tasks", 1)]
            }]
        );
        let (app, batch) = ob.next_batch(500).unwrap();
        assert_eq!((app.as_str(), batch.len()), ("todo", 1));
        ob.unsend(); // e.g. a network error: sent again next time
        let (_, again) = ob.next_batch(500).unwrap();
        assert_eq!(again, batch);
        assert_eq!(ob.ack(), [RowEdit::Delete(1)]);
        let (_, last) = ob.next_batch(500).unwrap();
        assert_eq!(last, [change("notes", 3)]);
        // The orphan (a collection no app declares) stays.
        assert_eq!(
            ob.ack(),
            [RowEdit::Replace {
                key: 2,
                changes: vec![change("gone", 4)]
            }]
        );
        assert_eq!(ob.next_batch(500), None);
        assert_eq!(ob.unsent(), 0);
    }
}
