//! The node's clock: unix milliseconds. The pure cores never read it; the actor passes `now`.
//!
//! Either the system clock (optionally offset: testbeds simulate skewed clocks with it) or a
//! stepped clock whose time a [`ClockDriver`] sets: `chorus devnet` runs real nodes on one
//! stepped clock and moves it on only when every node holds what the current phase needs, so
//! a run's results do not depend on the machine's load. Everything in a node that waits for a
//! time (timers, windows, role tasks) waits through [`Clock::sleep_until`], which follows
//! whichever source the clock has.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A time source.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Added to the source's time (ms).
    pub offset_ms: i64,
    /// The stepped time, if this clock is driven ([`Clock::stepped`]).
    stepped: Option<watch::Receiver<u64>>,
}

/// Sets the time of the stepped clocks made with it ([`Clock::stepped`]). Time never goes
/// back. When the driver is dropped, stepped clocks keep their last time and their sleeps no
/// longer end.
#[derive(Debug)]
pub struct ClockDriver {
    tx: watch::Sender<u64>,
}

impl ClockDriver {
    /// The driven time, ms.
    pub fn now_ms(&self) -> u64 {
        *self.tx.borrow()
    }

    /// Move the time on to `ms` (nothing if it is not later), waking whatever sleeps until
    /// then.
    pub fn set(&self, ms: u64) {
        self.tx.send_if_modified(|t| {
            let later = ms > *t;
            if later {
                *t = ms;
            }
            later
        });
    }

    /// Another clock on this driver's time.
    pub fn clock(&self) -> Clock {
        Clock {
            offset_ms: 0,
            stepped: Some(self.tx.subscribe()),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock at `start_ms` that moves only when its driver says so.
    pub fn stepped(start_ms: u64) -> (Clock, ClockDriver) {
        let (tx, rx) = watch::channel(start_ms);
        let clock = Clock {
            offset_ms: 0,
            stepped: Some(rx),
        };
        (clock, ClockDriver { tx })
    }

    /// Whether a driver sets this clock's time.
    pub fn is_stepped(&self) -> bool {
        self.stepped.is_some()
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        let ms = match &self.stepped {
            Some(rx) => i64::try_from(*rx.borrow()).unwrap_or(i64::MAX),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        ms.saturating_add(self.offset_ms).max(0) as u64
    }

    /// Wait until this clock reads `at_ms` or later.
    pub async fn sleep_until(&self, at_ms: u64) {
        match &self.stepped {
            None => {
                let wait = at_ms.saturating_sub(self.now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Some(rx) => {
                let mut rx = rx.clone();
                let offset = self.offset_ms;
                let reached = rx
                    .wait_for(|t| t.saturating_add_signed(offset) >= at_ms)
                    .await
                    .is_ok();
                if !reached {
                    // The driver is gone: this time never comes.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Wait until a driver moves this clock on since this clock last looked (at once if it
    /// has not looked since a move; never, for the system clock, whose time flows by itself):
    /// a node looks at its duties again whenever stepped time moves.
    pub async fn moved(&mut self) {
        let moved = match &mut self.stepped {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        };
        if !moved {
            std::future::pending::<()>().await;
        }
    }

    /// Wait `ms` milliseconds of this clock (at least 1; on the system clock at most a
    /// minute, after which the caller looks again).
    pub async fn sleep_ms(&self, ms: u64) {
        let ms = match self.stepped {
            Some(_) => ms.max(1),
            None => ms.clamp(1, 60_000),
        };
        self.sleep_until(self.now_ms().saturating_add(ms)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A stepped clock reads what its driver set, never goes back, and its sleeps end exactly
    /// when the driver reaches their time, not before (whatever real time passes).
    #[tokio::test]
    async fn a_stepped_clock_moves_only_with_its_driver() {
        let (clock, driver) = Clock::stepped(1_000);
        assert!(clock.is_stepped());
        assert_eq!(clock.now_ms(), 1_000);
        let sleeper = {
            let c = clock.clone();
            tokio::spawn(async move { c.sleep_until(1_500).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        driver.set(1_499);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sleeper.is_finished(), "woke before its time");
        driver.set(900);
        assert_eq!(clock.now_ms(), 1_499, "time went back");
        driver.set(1_500);
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        let mut watcher = clock.clone();
        // it has not looked since the driver's moves so far
        tokio::time::timeout(Duration::from_secs(5), watcher.moved())
            .await
            .unwrap();
        let moved = tokio::spawn(async move { watcher.moved().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!moved.is_finished(), "moved without a step");
        driver.set(1_600);
        tokio::time::timeout(Duration::from_secs(5), moved)
            .await
            .unwrap()
            .unwrap();
        let other = driver.clock();
        assert_eq!(other.now_ms(), 1_600);
        let offset = Clock {
            offset_ms: -100,
            ..clock.clone()
        };
        assert_eq!(offset.now_ms(), 1_500);
    }

    /// Once its driver is gone a stepped clock's sleep never ends (it must not spin).
    #[tokio::test]
    async fn a_sleep_on_a_dropped_driver_never_ends() {
        let (clock, driver) = Clock::stepped(0);
        drop(driver);
        let slept = tokio::time::timeout(Duration::from_millis(100), clock.sleep_ms(10)).await;
        assert!(slept.is_err());
    }

    #[test]
    fn the_system_clock_is_not_stepped_and_reads_unix_time() {
        let c = Clock::system();
        assert!(!c.is_stepped());
        assert!(c.now_ms() > 1_600_000_000_000);
    }
}
