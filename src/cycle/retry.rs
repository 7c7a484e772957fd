//! Backoff for containers that cannot be stopped or removed (a `dead`
//! container whose filesystem is busy, a stop Docker keeps refusing): tried
//! again after a delay that doubles with each failure (from one interval up
//! to an hour), and reported once an hour rather than every cycle, so one
//! stuck container neither floods the records nor keeps the act stage failing.
//! Pure: the clock is passed in.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The longest wait between two tries, and how often a failure that goes on
/// is reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    next_try: Instant,
    reported_at: Instant,
}

/// The containers whose last try failed.
#[derive(Debug, Default)]
pub struct Retries {
    entries: HashMap<String, Entry>,
}

impl Retries {
    /// The containers not to try now.
    pub fn waiting(&self, now: Instant) -> HashSet<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.next_try > now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Notes a failed try; `base` is the first delay (an interval). Returns
    /// whether to report it: the first failure, then once per `REPORT_EVERY`.
    pub fn failed(&mut self, id: &str, now: Instant, base: Duration) -> bool {
        let e = self.entries.entry(id.to_string()).or_insert(Entry {
            failures: 0,
            next_try: now,
            reported_at: now,
        });
        e.failures = e.failures.saturating_add(1);
        let factor = 1u32 << (e.failures - 1).min(16);
        e.next_try = now + base.saturating_mul(factor).min(REPORT_EVERY);
        let report = e.failures == 1 || now.duration_since(e.reported_at) >= REPORT_EVERY;
        if report {
            e.reported_at = now;
        }
        report
    }

    /// The container was stopped or removed, or is gone: forget it.
    pub fn done(&mut self, id: &str) {
        self.entries.remove(id);
    }

    /// Forgets the containers Docker no longer lists.
    pub fn keep_only(&mut self, listed: &HashSet<&str>) {
        self.entries.retain(|id, _| listed.contains(id.as_str()));
    }

    /// How many failures in a row a container has had.
    pub fn failures(&self, id: &str) -> u32 {
        self.entries.get(id).map_or(0, |e| e.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_an_hour_and_reports_come_hourly() {
        let base = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut r = Retries::default();
        let mut now = t0;
        let mut delays = Vec::new();
        let mut reports = 0;
        // Retried each time its delay has passed, for a day.
        while now < t0 + Duration::from_secs(86_400) {
            if r.waiting(now).contains("c") {
                now += Duration::from_secs(10);
                continue;
            }
            if r.failed("c", now, base) {
                reports += 1;
            }
            let wait = r.entries["c"].next_try - now;
            delays.push(wait.as_secs());
            now += Duration::from_secs(10);
        }
        assert_eq!(&delays[..5], &[10, 20, 40, 80, 160]);
        assert!(delays.iter().all(|&d| d <= 3600));
        assert_eq!(*delays.last().unwrap(), 3600);
        // The first failure, then about once an hour: not once a cycle.
        assert!((20..=26).contains(&reports), "{reports} reports in a day");
        assert!(r.failures("c") < 40, "{} tries in a day", r.failures("c"));
    }

    #[test]
    fn success_and_disappearance_forget() {
        let now = Instant::now();
        let mut r = Retries::default();
        r.failed("a", now, Duration::from_secs(1));
        r.failed("b", now, Duration::from_secs(1));
        assert_eq!(r.waiting(now).len(), 2);
        r.done("a");
        r.keep_only(&HashSet::from(["a"]));
        assert!(r.waiting(now).is_empty());
        assert!(
            r.failed("b", now, Duration::from_secs(1)),
            "a new first failure is reported"
        );
    }
}
