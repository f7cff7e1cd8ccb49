//! Unit tests of `slot`.
use super::*;
use crate::remote::breaker::FAILURE_THRESHOLD;

/// Answers every lookup with one fixed error.
#[derive(Debug)]
struct Failing {
    error: ProviderError,
    keyed: bool,
}

impl Provider for Failing {
    fn name(&self) -> &'static str {
        "test"
    }
    fn lookup(&self, _ip: IpAddr) -> futures::future::BoxFuture<'_, Result<Lookup, ProviderError>> {
        let error = self.error.clone();
        Box::pin(async move { Err(error) })
    }
    fn sends_credentials(&self) -> bool {
        self.keyed
    }
}

fn slot(error: ProviderError, keyed: bool) -> ProviderSlot {
    let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
    ProviderSlot::new(Arc::new(Failing { error, keyed }), no_limits(), metrics)
}

fn no_limits() -> SlotLimits {
    SlotLimits {
        per_minute: 0,
        per_day: 0,
        no_lookups: false,
        ttl: Duration::from_secs(60),
        not_found_ttl: Duration::from_secs(60),
        max_answers: 100,
    }
}

const NOW: Patience = Patience {
    max_wait: Duration::ZERO,
};

fn ip(i: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, i])
}

#[tokio::test]
async fn a_rejected_key_marks_the_provider_down() {
    let slot = slot(ProviderError::Unauthorized("bad key".into()), true);
    assert_eq!(
        slot.lookup(ip(1), NOW).await.intel.status,
        ProviderStatus::Unauthorized
    );
    assert!(slot.is_down());
    let later = slot.lookup(ip(2), NOW).await;
    assert_eq!(later.intel.status, ProviderStatus::Unauthorized);
    assert_eq!(later.retry_at, None, "not retried before a restart");
}

/// A clock that stands at one instant (a wait moves it on).
#[derive(Debug)]
struct Fixed(Mutex<SystemTime>);

impl Clock for Fixed {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
    fn sleep(&self, wait: Duration) -> BoxFuture<'static, ()> {
        *self.0.lock().unwrap() += wait;
        Box::pin(async {})
    }
}

#[tokio::test]
async fn a_403_without_a_key_is_a_one_hour_hold() {
    let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000);
    let slot = ProviderSlot::with_clock(
        Arc::new(Failing {
            error: ProviderError::Forbidden("blocked".into()),
            keyed: false,
        }),
        no_limits(),
        metrics,
        Arc::new(Fixed(Mutex::new(start))),
    );
    let outcome = slot.lookup(ip(1), NOW).await;
    assert_eq!(outcome.intel.status, ProviderStatus::Forbidden);
    assert!(!slot.is_down());
    let Admission::Wait(wait) = slot.admission(start) else {
        panic!("held");
    };
    assert_eq!(wait, Duration::from_secs(3600));
    assert_eq!(outcome.retry_at, Some(start + Duration::from_secs(3600)));
    assert_eq!(
        slot.lookup(ip(2), NOW).await.intel.status,
        ProviderStatus::Skipped
    );
}

#[tokio::test]
async fn unreadable_answers_open_the_circuit_without_retries() {
    let slot = slot(ProviderError::InvalidResponse("HTML page".into()), true);
    for i in 0..FAILURE_THRESHOLD {
        let outcome = slot.lookup(ip(i as u8), NOW).await;
        assert_eq!(outcome.intel.status, ProviderStatus::InvalidResponse);
    }
    assert!(matches!(
        slot.admission(SystemTime::now()),
        Admission::Wait(_)
    ));
    let refused = slot.lookup(ip(99), NOW).await;
    assert_eq!(refused.intel.status, ProviderStatus::Unavailable);
    assert!(refused.intel.detail.unwrap().contains("circuit open"));
}

// --- t15-remote: answer lifetimes.

#[test]
fn ok_answers_live_for_ttl_and_not_found_for_not_found_ttl() {
    use moka::Expiry;
    let expiry = AnswerExpiry {
        ttl: Duration::from_secs(86_400),
        not_found_ttl: Duration::from_secs(3_600),
    };
    let found = Lookup::Found {
        facts: serde_json::Map::new(),
        network: Network::default(),
    };
    let created = std::time::Instant::now();
    let cached = |lookup| Cached {
        lookup,
        until: SystemTime::UNIX_EPOCH,
    };
    assert_eq!(
        expiry.expire_after_create(&ip(1), &cached(found), created),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        expiry.expire_after_create(&ip(1), &cached(Lookup::NotFound), created),
        Some(Duration::from_secs(3_600))
    );
}

// --- g-allow: an allowance of "none" sends nothing ---

/// Counts the lookups it is asked; answers `NotFound`.
#[derive(Debug, Default)]
struct Counting(std::sync::atomic::AtomicUsize);

impl Provider for Counting {
    fn name(&self) -> &'static str {
        "test"
    }
    fn lookup(&self, _ip: IpAddr) -> futures::future::BoxFuture<'_, Result<Lookup, ProviderError>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok(Lookup::NotFound) })
    }
}

#[tokio::test]
async fn a_day_allowance_of_none_skips_every_lookup_without_a_request() {
    let settings =
        crate::settings::Settings::from_toml_overrides("[providers.otx]\nper_day = \"none\"\n")
            .unwrap();
    let limits = SlotLimits::from_settings(settings.providers.get("otx").unwrap(), 100);
    let provider = Arc::new(Counting::default());
    let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
    let slot = ProviderSlot::new(provider.clone(), limits, metrics);
    let patient = Patience {
        max_wait: Duration::from_secs(3_600),
    };
    let outcome = slot.lookup(ip(1), patient).await;
    assert_eq!(outcome.intel.status, ProviderStatus::Skipped);
    let detail = outcome.intel.detail.clone().unwrap_or_default();
    assert!(detail.contains("\"none\""), "{detail}");
    assert_eq!(
        outcome.retry_at, None,
        "never retried: no budget ever comes"
    );
    // The first record already says so instead of `pending`.
    let known = slot.known_without_asking(ip(2), SystemTime::now());
    assert_eq!(known.map(|k| k.status), Some(ProviderStatus::Skipped));
    assert_eq!(provider.0.load(std::sync::atomic::Ordering::SeqCst), 0);
}
