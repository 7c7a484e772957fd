//! Records waiting in memory because the spool could not take them (a
//! read-only or full disk, an I/O error): bounded, oldest first.
//!
//! Each batch has an id, because two parties take records off the queue:
//! the sender once the log service has them, and the spool writer once the
//! disk takes them again. Whichever comes second finds its batch gone, or
//! shorter, and does nothing wrong: a record at most reaches the log service
//! twice, which it ignores.

use crate::ship::records::Record;
use std::collections::VecDeque;

#[derive(Debug)]
pub struct MemoryQueue {
    batches: VecDeque<(u64, Vec<Record>)>,
    next_id: u64,
    held: usize,
    max_records: usize,
}

impl MemoryQueue {
    pub fn new(max_records: usize) -> MemoryQueue {
        MemoryQueue {
            batches: VecDeque::new(),
            next_id: 0,
            held: 0,
            max_records,
        }
    }

    pub fn records(&self) -> usize {
        self.held
    }

    pub fn max_records(&self) -> usize {
        self.max_records
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Keeps a batch, or hands it back when it does not fit the bound.
    pub fn push(&mut self, records: Vec<Record>) -> Result<(), Vec<Record>> {
        if self.held + records.len() > self.max_records {
            return Err(records);
        }
        self.held += records.len();
        self.batches.push_back((self.next_id, records));
        self.next_id += 1;
        Ok(())
    }

    /// The oldest batch's id and up to `limit` of its first records.
    pub fn front(&self, limit: usize) -> Option<(u64, Vec<Record>)> {
        let (id, records) = self.batches.front()?;
        Some((*id, records[..limit.min(records.len())].to_vec()))
    }

    /// Takes the `n` first records of batch `id` off, if it is still the
    /// oldest (the spool writer may have taken it meanwhile).
    pub fn consume(&mut self, id: u64, n: usize) {
        let Some((front, records)) = self.batches.front_mut() else {
            return;
        };
        if *front != id {
            return;
        }
        let n = n.min(records.len());
        records.drain(..n);
        self.held -= n;
        if records.is_empty() {
            self.batches.pop_front();
        }
    }

    /// Every batch's id and all their records, oldest first, to be written
    /// to the spool as one segment.
    pub fn all(&self) -> (Vec<u64>, Vec<Record>) {
        let ids = self.batches.iter().map(|(id, _)| *id).collect();
        let records = self
            .batches
            .iter()
            .flat_map(|(_, r)| r.iter().cloned())
            .collect();
        (ids, records)
    }

    /// Takes the batches `ids` off (those the spool now holds).
    pub fn remove(&mut self, ids: &[u64]) {
        self.batches.retain(|(id, records)| {
            let gone = ids.contains(id);
            if gone {
                self.held -= records.len();
            }
            !gone
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::spool::tests::records;

    #[test]
    fn bounded_oldest_first_and_consumed_in_part() {
        let r = records(6);
        let mut q = MemoryQueue::new(5);
        q.push(r[..3].to_vec()).unwrap();
        assert_eq!(q.push(r[3..].to_vec()), Err(r[3..].to_vec()));
        q.push(r[3..5].to_vec()).unwrap();
        assert_eq!(q.records(), 5);
        let (id, batch) = q.front(2).unwrap();
        assert_eq!(batch, r[..2].to_vec());
        q.consume(id, 2);
        assert_eq!(q.front(10).unwrap(), (id, r[2..3].to_vec()));
        q.consume(id, 1);
        let (id2, batch) = q.front(10).unwrap();
        assert_ne!(id2, id);
        assert_eq!(batch, r[3..5].to_vec());
        assert_eq!(q.records(), 2);
    }

    #[test]
    fn what_the_spool_took_is_not_consumed_twice() {
        let r = records(4);
        let mut q = MemoryQueue::new(10);
        q.push(r[..2].to_vec()).unwrap();
        q.push(r[2..].to_vec()).unwrap();
        // The sender posts the first batch; meanwhile the spool takes all.
        let (sending, _) = q.front(2).unwrap();
        let (ids, all) = q.all();
        assert_eq!(all, r);
        q.remove(&ids);
        assert!(q.is_empty());
        // A batch pushed after the spool's copy is not touched by either.
        q.push(r[..1].to_vec()).unwrap();
        q.consume(sending, 2);
        q.remove(&ids);
        assert_eq!(q.records(), 1);
    }
}
