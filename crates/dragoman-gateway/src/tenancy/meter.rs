//! What one key, team or user has used: requests and tokens in the last minute, requests in
//! flight, and spend in the current budget period with what is reserved against it. Pure and
//! synchronous (a mutex held for a few comparisons), so the policy stage never awaits.
//!
//! Requests are an exact sliding window: the times of those admitted in the last 60 s, so a
//! limit of 60 admits exactly 60 in any minute. Tokens are known only when a request ends, so
//! they are counted then, in one-second buckets of the last minute.

use std::collections::VecDeque;
use std::sync::Mutex;

/// The window every per-minute limit is counted over.
pub const WINDOW_MS: i64 = 60_000;

/// One entity's limits, as the policy stage applies them to its meter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Caps {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub parallel: Option<u64>,
    /// Nano-dollars per budget period.
    pub budget: Option<i64>,
    /// The budget period; `None`: the budget never resets.
    pub period_ms: Option<i64>,
    /// Where periods are counted from (Unix ms).
    pub anchor_ms: i64,
}

impl Caps {
    /// Whether these caps limit anything (a meter without them only counts spend).
    pub fn limits_anything(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.parallel.is_some() || self.budget.is_some()
    }

    /// This instance's share of the caps when it must decide alone among `n` instances: each
    /// limit divided (at least 1), and of the budget what is left divided.
    pub fn share(&self, n: u64, spent: i64) -> Caps {
        if n <= 1 {
            return *self;
        }
        let part = |v: Option<u64>| v.map(|v| v.div_ceil(n).max(1));
        Caps {
            rpm: part(self.rpm),
            tpm: part(self.tpm),
            parallel: part(self.parallel),
            budget: self.budget.map(|b| spent + (b - spent).max(0) / n as i64),
            ..*self
        }
    }
}

/// Why a meter refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A per-minute or parallel limit: try again after `retry_after_ms`.
    Limit {
        what: &'static str,
        limit: u64,
        retry_after_ms: i64,
    },
    /// The budget is spent until `resets_at_ms` (never, when `None`).
    Budget {
        budget: i64,
        spent: i64,
        resets_at_ms: Option<i64>,
    },
}

/// Remaining headroom, for the rate-limit headers: `(limit, remaining, Unix ms when the window
/// is whole again)` for requests and tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Headroom {
    pub requests: Option<(u64, u64, i64)>,
    pub tokens: Option<(u64, u64, i64)>,
    pub spent: i64,
    pub budget: Option<i64>,
}

#[derive(Debug, Default)]
struct State {
    /// Admission times (Unix ms) in the last minute, oldest first.
    requests: VecDeque<i64>,
    /// (second, tokens) of the last minute, oldest first.
    tokens: VecDeque<(i64, u64)>,
    token_sum: u64,
    in_flight: u64,
    /// Settled spend in the period starting at `period_start`.
    spent: i64,
    reserved: i64,
    period_start: i64,
}

impl State {
    fn room(&self, caps: &Caps, now: i64) -> Headroom {
        let reset_at = |oldest: Option<i64>| oldest.map_or(now, |t| (t + WINDOW_MS).max(now));
        Headroom {
            requests: caps.rpm.map(|l| {
                (
                    l,
                    l.saturating_sub(self.requests.len() as u64),
                    reset_at(self.requests.front().copied()),
                )
            }),
            tokens: caps.tpm.map(|l| {
                (
                    l,
                    l.saturating_sub(self.token_sum),
                    reset_at(self.tokens.front().map(|&(sec, _)| sec * 1000)),
                )
            }),
            spent: self.spent,
            budget: caps.budget,
        }
    }

    fn prune(&mut self, now: i64) {
        while self.requests.front().is_some_and(|&t| t <= now - WINDOW_MS) {
            self.requests.pop_front();
        }
        let second = now.div_euclid(1000);
        while self.tokens.front().is_some_and(|&(s, _)| s <= second - 60) {
            if let Some((_, n)) = self.tokens.pop_front() {
                self.token_sum -= n;
            }
        }
    }

    /// Moves to the period `now` falls in; the spend of a finished period no longer counts.
    fn roll(&mut self, caps: &Caps, now: i64) {
        if let Some(p) = caps.period_ms.filter(|p| *p > 0) {
            let start = caps.anchor_ms + (now - caps.anchor_ms).div_euclid(p) * p;
            if start > self.period_start {
                self.period_start = start;
                self.spent = 0;
            }
        }
    }
}

/// One entity's usage. Shared by every request of that entity (and kept across reloads of
/// its limits).
#[derive(Debug, Default)]
pub struct Meter {
    state: Mutex<State>,
    /// The soft budget's warning was logged (once per process and period start).
    soft_warned: std::sync::atomic::AtomicI64,
}

impl Meter {
    /// A meter whose current period began at `period_start` with `spent` already settled.
    pub fn with_spend(spent: i64, period_start: i64) -> Meter {
        Meter {
            state: Mutex::new(State {
                spent,
                period_start,
                ..State::default()
            }),
            soft_warned: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Admits one request that may cost up to `reserve` nano-dollars, or says why not. An
    /// admitted request is counted at once (its minute, its slot in flight, its reservation)
    /// and must be [`Meter::settle`]d or [`Meter::cancel`]led. Returns the headroom left, read
    /// under the same lock, for the response headers.
    ///
    /// A reservation that does not fit beside the others is still admitted when nothing else
    /// is reserved and the budget is not spent: the tail of a budget stays usable, and the
    /// spend passes the budget by at most that one request.
    pub fn admit(&self, caps: &Caps, now: i64, reserve: i64) -> Result<Headroom, Refusal> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(Headroom::default());
        };
        s.prune(now);
        s.roll(caps, now);
        if let Some(budget) = caps.budget {
            let fits = s.spent + s.reserved + reserve <= budget;
            let alone = s.reserved == 0 && s.spent < budget;
            if s.spent >= budget || !(fits || alone) {
                return Err(Refusal::Budget {
                    budget,
                    spent: s.spent,
                    resets_at_ms: caps
                        .period_ms
                        .filter(|p| *p > 0)
                        .map(|p| s.period_start.max(caps.anchor_ms) + p),
                });
            }
        }
        if let Some(rpm) = caps.rpm
            && s.requests.len() as u64 >= rpm
        {
            let oldest = s.requests.front().copied().unwrap_or(now);
            return Err(Refusal::Limit {
                what: "requests per minute",
                limit: rpm,
                retry_after_ms: (oldest + WINDOW_MS - now).max(1),
            });
        }
        if let Some(tpm) = caps.tpm
            && s.token_sum >= tpm
        {
            let oldest = s.tokens.front().map_or(now, |&(sec, _)| sec * 1000);
            return Err(Refusal::Limit {
                what: "tokens per minute",
                limit: tpm,
                retry_after_ms: (oldest + WINDOW_MS - now).max(1),
            });
        }
        if let Some(max) = caps.parallel
            && s.in_flight >= max
        {
            return Err(Refusal::Limit {
                what: "parallel requests",
                limit: max,
                retry_after_ms: 1000,
            });
        }
        if caps.rpm.is_some() {
            s.requests.push_back(now);
        }
        s.in_flight += 1;
        s.reserved += reserve;
        Ok(s.room(caps, now))
    }

    /// Counts a request admitted elsewhere (by the shared limiter): this instance's view
    /// stays current for when it must decide alone.
    pub fn record(&self, caps: &Caps, now: i64, reserve: i64, spent: Option<i64>) -> Headroom {
        let Ok(mut s) = self.state.lock() else {
            return Headroom::default();
        };
        s.prune(now);
        s.roll(caps, now);
        if caps.rpm.is_some() {
            s.requests.push_back(now);
        }
        s.in_flight += 1;
        s.reserved += reserve;
        if let Some(g) = spent {
            // The global spend this period, as the shared counter holds it.
            s.spent = s.spent.max(g);
        }
        s.room(caps, now)
    }

    /// Ends an admitted request: its reservation becomes its real cost (`None`: unknown, counted
    /// as nothing) and its tokens count against the minute.
    pub fn settle(&self, caps: &Caps, now: i64, reserved: i64, cost: Option<i64>, tokens: u64) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.prune(now);
        s.roll(caps, now);
        s.in_flight = s.in_flight.saturating_sub(1);
        s.reserved = (s.reserved - reserved).max(0);
        s.spent += cost.unwrap_or(0).max(0);
        if tokens > 0 {
            let second = now.div_euclid(1000);
            match s.tokens.back_mut() {
                Some((sec, n)) if *sec == second => *n += tokens,
                _ => s.tokens.push_back((second, tokens)),
            }
            s.token_sum += tokens;
        }
    }

    /// Takes back an admission that never reached an upstream (a later check refused): the
    /// request does not count against any limit.
    pub fn cancel(&self, now: i64, reserved: i64, counted_request: bool) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.in_flight = s.in_flight.saturating_sub(1);
        s.reserved = (s.reserved - reserved).max(0);
        if counted_request && let Some(pos) = s.requests.iter().rposition(|&t| t == now) {
            s.requests.remove(pos);
        }
    }

    /// Adds spend settled elsewhere (another instance's requests, seen through the store).
    pub fn add_spend(&self, nanos: i64) {
        if let Ok(mut s) = self.state.lock() {
            s.spent += nanos;
        }
    }

    /// Headroom after this request's admission, for the response headers.
    pub fn headroom(&self, caps: &Caps, now: i64) -> Headroom {
        let Ok(mut s) = self.state.lock() else {
            return Headroom::default();
        };
        s.prune(now);
        s.roll(caps, now);
        s.room(caps, now)
    }

    /// Spend settled in the current period, and what is reserved now (`room` reads it under
    /// the same lock at admission).
    pub fn spend(&self, caps: &Caps, now: i64) -> (i64, i64) {
        let Ok(mut s) = self.state.lock() else {
            return (0, 0);
        };
        s.roll(caps, now);
        (s.spent, s.reserved)
    }

    /// True the first time in a budget period that spend has reached `soft` (nano-dollars).
    pub fn crossed_soft(&self, caps: &Caps, now: i64, soft: i64) -> bool {
        let (spent, _) = self.spend(caps, now);
        if spent < soft {
            return false;
        }
        // Stored one past the period's start, so a fresh meter's 0 means "not yet".
        let mark = super::period_start(caps, now).wrapping_add(1);
        self.soft_warned
            .swap(mark, std::sync::atomic::Ordering::Relaxed)
            != mark
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps::default()
    }

    #[test]
    fn rpm_is_an_exact_sliding_window() {
        let m = Meter::default();
        let c = Caps {
            rpm: Some(3),
            ..caps()
        };
        for t in [0, 10, 20] {
            assert!(m.admit(&c, t, 0).is_ok());
            m.settle(&c, t, 0, None, 0);
        }
        match m.admit(&c, 59_999, 0) {
            Err(Refusal::Limit { retry_after_ms, .. }) => assert_eq!(retry_after_ms, 1),
            other => panic!("{other:?}"),
        }
        // The first admission leaves the window at exactly 60 s.
        assert!(m.admit(&c, 60_000, 0).is_ok());
        assert!(m.admit(&c, 60_001, 0).is_err());
    }

    #[test]
    fn tokens_count_when_requests_end() {
        let m = Meter::default();
        let c = Caps {
            tpm: Some(100),
            ..caps()
        };
        assert!(m.admit(&c, 0, 0).is_ok());
        assert!(m.admit(&c, 0, 0).is_ok());
        m.settle(&c, 500, 0, None, 60);
        m.settle(&c, 1500, 0, None, 50);
        assert!(matches!(
            m.admit(&c, 2000, 0),
            Err(Refusal::Limit {
                what: "tokens per minute",
                ..
            })
        ));
        // The first second's tokens leave the window a minute later.
        assert!(m.admit(&c, 60_000, 0).is_ok());
    }

    #[test]
    fn parallel_slots_free_on_settle_and_cancel() {
        let m = Meter::default();
        let c = Caps {
            parallel: Some(1),
            rpm: Some(10),
            ..caps()
        };
        assert!(m.admit(&c, 0, 0).is_ok());
        assert!(m.admit(&c, 1, 0).is_err());
        m.cancel(0, 0, true);
        assert_eq!(m.in_flight(), 0);
        // A cancelled admission did not count against the minute either.
        assert_eq!(m.headroom(&c, 2).requests, Some((10, 10, 2)));
        assert!(m.admit(&c, 3, 0).is_ok());
    }

    #[test]
    fn budget_reserves_then_settles_and_resets_each_period() {
        let m = Meter::default();
        let c = Caps {
            budget: Some(100),
            period_ms: Some(1000),
            anchor_ms: 0,
            ..caps()
        };
        assert!(m.admit(&c, 10, 60).is_ok());
        // 60 reserved: another 60 does not fit beside it.
        assert!(matches!(
            m.admit(&c, 11, 60),
            Err(Refusal::Budget {
                resets_at_ms: Some(1000),
                ..
            })
        ));
        assert!(m.admit(&c, 12, 40).is_ok());
        m.settle(&c, 20, 60, Some(30), 0);
        m.settle(&c, 21, 40, Some(30), 0);
        assert_eq!(m.spend(&c, 22), (60, 0));
        // Alone, a request whose worst case does not fit is admitted while budget is left.
        assert!(m.admit(&c, 30, 500).is_ok());
        m.settle(&c, 31, 500, Some(50), 0);
        assert!(matches!(
            m.admit(&c, 40, 1),
            Err(Refusal::Budget { spent: 110, .. })
        ));
        // The next period starts from nothing.
        assert!(m.admit(&c, 1000, 60).is_ok());
        assert_eq!(m.spend(&c, 1001), (0, 60));
    }

    #[test]
    fn the_soft_budget_is_reported_once_a_period() {
        let m = Meter::with_spend(0, 0);
        let c = Caps {
            period_ms: Some(1000),
            ..caps()
        };
        assert!(!m.crossed_soft(&c, 10, 50));
        m.add_spend(60);
        assert!(m.crossed_soft(&c, 20, 50));
        assert!(!m.crossed_soft(&c, 30, 50));
        m.add_spend(60);
        // A new period starts from nothing; crossing again is reported again.
        assert!(!m.crossed_soft(&c, 1010, 50));
        assert!(m.admit(&c, 1020, 0).is_ok());
        m.settle(&c, 1030, 0, Some(70), 0);
        assert!(m.crossed_soft(&c, 1040, 50));
    }

    #[test]
    fn a_budget_without_a_period_never_resets() {
        let m = Meter::with_spend(100, 0);
        let c = Caps {
            budget: Some(100),
            ..caps()
        };
        assert!(matches!(
            m.admit(&c, i64::MAX / 2, 0),
            Err(Refusal::Budget {
                resets_at_ms: None,
                ..
            })
        ));
    }
}
