//! A simulator of plausible card traffic with fraud in it.
//!
//! Accounts have habits (home country, preferred merchant categories, typical spend, devices, how
//! often the card is present); amounts are log-normal (heavy right tail); a business clock runs a
//! day/night cycle with fewer transactions at night, when fraud is relatively more common. Fraud comes
//! in patterns that differ in their features, so that a model can learn them:
//!
//! | pattern | what it looks like |
//! | --- | --- |
//! | card testing | tiny card-not-present amounts at digital-goods merchants, abroad, unknown device |
//! | account takeover | large e-commerce purchases (electronics, jewellery, flights) from a new device |
//! | cloned card | card-present or ATM use far from home, abroad |
//! | bust-out | a days-old account spending big (off by default: the demo's "new pattern") |
//!
//! Drift ([`Drift`]) is injected at an event index, suddenly or ramped over a number of events.
//! Everything is a pure function of the seed and the configuration.

use vigil_events::Transaction;

use super::dist::Dist;

/// A fraud pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Small probing payments.
    CardTesting,
    /// A stolen login buying expensive goods.
    AccountTakeover,
    /// A cloned card used in person abroad.
    ClonedCard,
    /// A new account maxing out.
    BustOut,
}

impl Pattern {
    /// All patterns.
    pub const ALL: [Pattern; 4] =
        [Pattern::CardTesting, Pattern::AccountTakeover, Pattern::ClonedCard, Pattern::BustOut];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::CardTesting => "card-testing",
            Pattern::AccountTakeover => "account-takeover",
            Pattern::ClonedCard => "cloned-card",
            Pattern::BustOut => "bust-out",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Pattern> {
        Pattern::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// What changes when drift is injected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DriftKind {
    /// Covariate shift: every amount is multiplied by `factor` (e.g. inflation, a currency change).
    Amounts {
        /// The multiplier once the drift is complete.
        factor: f64,
    },
    /// Covariate shift: legitimate spending moves to travel merchants (airlines, hotels, taxis) abroad.
    Merchants,
    /// Concept change: a fraud pattern starts.
    PatternStarts(Pattern),
    /// Concept change: a fraud pattern stops.
    PatternStops(Pattern),
    /// Prior change: a fraud wave, the share of fraud multiplied by `factor` (reached linearly).
    FraudRate {
        /// The multiplier once the drift is complete.
        factor: f64,
    },
}

/// One injected drift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// What changes.
    pub kind: DriftKind,
    /// Event index where it begins.
    pub at: u64,
    /// Events over which it ramps in (0: sudden).
    pub over: u64,
}

impl Drift {
    /// How far the drift has progressed at event `i`, in [0, 1].
    pub fn progress(&self, i: u64) -> f64 {
        if i < self.at {
            0.0
        } else if self.over == 0 {
            1.0
        } else {
            ((i - self.at) as f64 / self.over as f64).min(1.0)
        }
    }

    /// Parses `kind[:arg],at=N[,over=M]`, e.g. `amounts:3,at=50000`, `pattern-starts:bust-out,at=1000,over=500`,
    /// `merchants,at=10`.
    pub fn parse(s: &str) -> Result<Drift, String> {
        let mut parts = s.split(',');
        let head = parts.next().unwrap_or_default();
        let (kind, arg) = head.split_once(':').map(|(k, a)| (k, Some(a))).unwrap_or((head, None));
        let pattern = |a: Option<&str>| {
            a.and_then(Pattern::parse)
                .ok_or_else(|| format!("drift `{s}`: name a pattern ({})", Pattern::ALL.map(Pattern::name).join(", ")))
        };
        let kind = match kind {
            "amounts" => DriftKind::Amounts {
                factor: arg.unwrap_or("2").parse().map_err(|_| format!("drift `{s}`: the factor is not a number"))?,
            },
            "merchants" => DriftKind::Merchants,
            "pattern-starts" => DriftKind::PatternStarts(pattern(arg)?),
            "pattern-stops" => DriftKind::PatternStops(pattern(arg)?),
            "fraud-rate" => DriftKind::FraudRate {
                factor: arg
                    .and_then(|a| a.parse().ok())
                    .filter(|f: &f64| *f >= 0.0 && f.is_finite())
                    .ok_or_else(|| format!("drift `{s}`: fraud-rate:F needs a factor F >= 0"))?,
            },
            other => {
                return Err(format!(
                    "drift `{s}`: unknown kind `{other}` (amounts:F, merchants, pattern-starts:P, pattern-stops:P, fraud-rate:F)"
                ));
            }
        };
        let (mut at, mut over) = (None, 0);
        for p in parts {
            match p.split_once('=') {
                Some(("at", v)) => at = Some(v.parse().map_err(|_| format!("drift `{s}`: at= is not a count"))?),
                Some(("over", v)) => over = v.parse().map_err(|_| format!("drift `{s}`: over= is not a count"))?,
                _ => return Err(format!("drift `{s}`: unknown part `{p}` (at=N, over=M)")),
            }
        }
        let at = at.ok_or_else(|| format!("drift `{s}`: at=N is required"))?;
        Ok(Drift { kind, at, over })
    }
}

/// Settings of the simulator.
#[derive(Debug, Clone)]
pub struct FraudConfig {
    /// Seed of everything.
    pub seed: u64,
    /// Number of card holders.
    pub accounts: usize,
    /// Share of transactions that are fraud, on average over the day.
    pub fraud_rate: f64,
    /// Business clock at the first event (epoch ms).
    pub start_time_ms: i64,
    /// Mean business time between transactions at the daily peak (ms).
    pub peak_gap_ms: f64,
    /// Prefix of event ids.
    pub id_prefix: String,
    /// Patterns active from the start.
    pub patterns: Vec<Pattern>,
    /// Injected drift.
    pub drifts: Vec<Drift>,
}

impl Default for FraudConfig {
    fn default() -> Self {
        FraudConfig {
            seed: 42,
            accounts: 5_000,
            fraud_rate: 0.01,
            start_time_ms: 1_767_571_200_000, // 2026-01-05T00:00:00Z, a Monday
            peak_gap_ms: 3_000.0,
            id_prefix: "tx".into(),
            patterns: vec![Pattern::CardTesting, Pattern::AccountTakeover, Pattern::ClonedCard],
            drifts: Vec::new(),
        }
    }
}

/// A merchant category: ISO 18245 code, log-mean amount, share of card-present use.
struct Category {
    mcc: &'static str,
    log_mean: f64,
    card_present: f64,
}

const LEGIT: &[Category] = &[
    Category { mcc: "5411", log_mean: 3.4, card_present: 0.95 }, // grocery
    Category { mcc: "5812", log_mean: 3.3, card_present: 0.9 },  // restaurants
    Category { mcc: "5541", log_mean: 3.9, card_present: 0.98 }, // fuel
    Category { mcc: "5311", log_mean: 4.0, card_present: 0.7 },  // department stores
    Category { mcc: "5732", log_mean: 4.9, card_present: 0.5 },  // electronics
    Category { mcc: "5999", log_mean: 3.5, card_present: 0.6 },  // misc retail
    Category { mcc: "5816", log_mean: 2.4, card_present: 0.0 },  // digital goods
    Category { mcc: "4121", log_mean: 3.0, card_present: 0.3 },  // taxis
    Category { mcc: "6011", log_mean: 4.6, card_present: 1.0 },  // ATM
];

const TRAVEL: &[Category] = &[
    Category { mcc: "4511", log_mean: 5.8, card_present: 0.05 }, // airlines
    Category { mcc: "7011", log_mean: 5.2, card_present: 0.4 },  // hotels
    Category { mcc: "4121", log_mean: 3.2, card_present: 0.3 },  // taxis
];

/// Home countries with their currency and weight.
const HOMES: &[(&str, &str, f64)] = &[
    ("DE", "EUR", 5.0),
    ("FR", "EUR", 4.0),
    ("GB", "GBP", 4.0),
    ("NL", "EUR", 2.0),
    ("ES", "EUR", 2.0),
    ("IT", "EUR", 2.0),
    ("US", "USD", 3.0),
    ("PL", "PLN", 1.0),
    ("SE", "SEK", 1.0),
];

/// Where fraud is often cashed out (merchant countries of foreign fraud).
const FRAUD_COUNTRIES: &[(&str, &str)] =
    &[("NG", "NGN"), ("RU", "RUB"), ("BR", "BRL"), ("ID", "IDR"), ("VN", "VND"), ("UA", "UAH"), ("RO", "RON")];

struct Account {
    id: String,
    card: String,
    home: usize,
    prefs: Vec<(usize, f64)>,
    spend_offset: f64,
    card_present_bias: f64,
    devices: Vec<String>,
    age_days: i32,
    weight: f64,
}

/// One simulated transaction and the truth about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulated {
    /// The record.
    pub tx: Transaction,
    /// Whether it is fraud.
    pub fraud: bool,
    /// Which pattern, if fraud.
    pub pattern: Option<Pattern>,
}

/// The simulator: call [`FraudSim::next`] for each transaction.
pub struct FraudSim {
    cfg: FraudConfig,
    d: Dist,
    accounts: Vec<Account>,
    account_weights: Vec<f64>,
    clock_ms: f64,
    i: u64,
}

impl FraudSim {
    /// A simulator with its population of accounts drawn from the seed.
    pub fn new(cfg: FraudConfig) -> FraudSim {
        let mut d = Dist::new(cfg.seed);
        let home_weights: Vec<f64> = HOMES.iter().map(|h| h.2).collect();
        let accounts: Vec<Account> = (0..cfg.accounts.max(1))
            .map(|a| {
                let home = d.weighted(&home_weights);
                let mut prefs = Vec::new();
                for _ in 0..4 {
                    // ATMs and taxis are everyone's second thoughts; groceries everyone's first.
                    prefs.push((d.index(LEGIT.len()), d.range(0.5, 3.0)));
                }
                prefs.push((0, 3.0));
                let devices = (0..1 + d.index(2)).map(|k| format!("dev-{a}-{k}")).collect();
                let age_days = if d.chance(0.03) { 30 + d.index(60) as i32 } else { 90 + d.exponential(900.0) as i32 };
                Account {
                    id: format!("acct-{a:05}"),
                    card: format!("card-{a:05}-{}", d.index(3)),
                    home,
                    prefs,
                    spend_offset: 0.4 * d.normal(),
                    card_present_bias: d.range(0.7, 1.2),
                    devices,
                    age_days,
                    weight: d.lognormal(0.0, 0.8),
                }
            })
            .collect();
        let account_weights = accounts.iter().map(|a| a.weight).collect();
        let clock_ms = cfg.start_time_ms as f64;
        FraudSim { cfg, d, accounts, account_weights, clock_ms, i: 0 }
    }

    /// Transactions simulated so far.
    pub fn count(&self) -> u64 {
        self.i
    }

    fn progress(&self, pick: impl Fn(&DriftKind) -> bool) -> f64 {
        self.cfg.drifts.iter().filter(|d| pick(&d.kind)).map(|d| d.progress(self.i)).fold(0.0, f64::max)
    }

    fn pattern_weight(&self, p: Pattern) -> f64 {
        let base: f64 = if self.cfg.patterns.contains(&p) { 1.0 } else { 0.0 };
        let starts = self.progress(|k| *k == DriftKind::PatternStarts(p));
        let stops = self.progress(|k| *k == DriftKind::PatternStops(p));
        (base.max(starts) * (1.0 - stops)).clamp(0.0, 1.0)
    }

    fn fraud_factor(&self) -> f64 {
        self.cfg
            .drifts
            .iter()
            .map(|d| match d.kind {
                DriftKind::FraudRate { factor } => 1.0 + (factor - 1.0) * d.progress(self.i),
                _ => 1.0,
            })
            .product()
    }

    fn amount_factor(&self) -> f64 {
        self.cfg
            .drifts
            .iter()
            .map(|d| match d.kind {
                DriftKind::Amounts { factor } => factor.powf(d.progress(self.i)),
                _ => 1.0,
            })
            .product()
    }

    /// The next transaction.
    pub fn transaction(&mut self) -> Simulated {
        // Business clock: fewer transactions at night (thinned Poisson arrivals).
        let hour = ((self.clock_ms / 3_600_000.0) % 24.0) as u32;
        let intensity = day_curve(hour);
        self.clock_ms += self.d.exponential(self.cfg.peak_gap_ms / intensity);
        let hour = ((self.clock_ms / 3_600_000.0) % 24.0) as u32;
        let night = hour < 6;
        // Fraud is relatively more common at night; the factors keep the daily average at the rate.
        let fraud_p = (self.cfg.fraud_rate * self.fraud_factor() * if night { 2.2 } else { 0.9 }).min(1.0);
        let weights: Vec<f64> = Pattern::ALL.iter().map(|p| self.pattern_weight(*p)).collect();
        let any_pattern = weights.iter().any(|w| *w > 0.0);
        let a = self.d.weighted(&self.account_weights);
        let amount_factor = self.amount_factor();
        let (mut tx, pattern) = if any_pattern && self.d.chance(fraud_p) {
            let p = Pattern::ALL[self.d.weighted(&weights)];
            (self.fraud(a, p), Some(p))
        } else {
            (self.legit(a), None)
        };
        tx.amount = round_cents((tx.amount * amount_factor).max(0.5));
        tx.event_time = self.clock_ms as i64;
        tx.event_id = format!("{}-{:016x}-{}", self.cfg.id_prefix, self.cfg.seed, self.i);
        self.i += 1;
        Simulated { tx, fraud: pattern.is_some(), pattern }
    }

    fn base(&self, a: usize) -> Transaction {
        let acct = &self.accounts[a];
        let (country, currency, _) = HOMES[acct.home];
        Transaction {
            event_id: String::new(),
            account_id: acct.id.clone(),
            card_id: acct.card.clone(),
            event_time: 0,
            amount: 0.0,
            currency: currency.into(),
            merchant_id: String::new(),
            merchant_category: String::new(),
            channel: String::new(),
            country: country.into(),
            card_present: true,
            account_age_days: acct.age_days,
            device_id: None,
            distance_from_home_km: None,
        }
    }

    fn legit(&mut self, a: usize) -> Transaction {
        let travel_p = 0.6 * self.progress(|k| *k == DriftKind::Merchants);
        let travelling = self.d.chance(0.04 + travel_p);
        let category = if self.d.chance(travel_p) {
            &TRAVEL[self.d.index(TRAVEL.len())]
        } else {
            let acct = &self.accounts[a];
            let w: Vec<f64> = acct.prefs.iter().map(|p| p.1).collect();
            let k = acct.prefs[self.d.weighted(&w)].0;
            &LEGIT[if self.d.chance(0.85) { k } else { self.d.index(LEGIT.len()) }]
        };
        let acct = &self.accounts[a];
        let mut tx = self.base(a);
        let cp = (category.card_present * acct.card_present_bias).min(1.0);
        tx.merchant_category = category.mcc.into();
        tx.amount = self.d.lognormal(category.log_mean + acct.spend_offset, 0.7);
        tx.card_present = self.d.chance(cp);
        tx.channel = channel(&mut self.d, category.mcc, tx.card_present).into();
        if !tx.card_present {
            tx.device_id = Some(acct.devices[self.d.index(acct.devices.len())].clone());
        }
        if travelling {
            let other = (acct.home + 1 + self.d.index(HOMES.len() - 1)) % HOMES.len();
            tx.country = HOMES[other].0.into();
            tx.currency = HOMES[other].1.into();
            tx.distance_from_home_km = Some(self.d.range(300.0, 2500.0).round());
        } else {
            tx.distance_from_home_km = Some((self.d.exponential(6.0) * 10.0).round() / 10.0);
        }
        tx.merchant_id = format!("m-{}-{:03}", category.mcc, self.d.index(200));
        tx
    }

    fn fraud(&mut self, a: usize, p: Pattern) -> Transaction {
        let mut tx = self.base(a);
        let new_device = format!("dev-x{:08x}", self.d.bits() as u32);
        let abroad = |d: &mut Dist, tx: &mut Transaction| {
            let (c, cur) = FRAUD_COUNTRIES[d.index(FRAUD_COUNTRIES.len())];
            tx.country = c.into();
            tx.currency = cur.into();
        };
        match p {
            Pattern::CardTesting => {
                tx.merchant_category = if self.d.chance(0.5) { "5816" } else { "5967" }.into();
                tx.amount = self.d.range(0.5, 4.0);
                tx.card_present = false;
                tx.channel = "ecommerce".into();
                tx.device_id = Some(new_device);
                abroad(&mut self.d, &mut tx);
                tx.distance_from_home_km = None;
            }
            Pattern::AccountTakeover => {
                tx.merchant_category = ["5732", "5944", "4511"][self.d.index(3)].into();
                tx.amount = self.d.lognormal(6.3, 0.5);
                tx.card_present = false;
                tx.channel = "ecommerce".into();
                tx.device_id = Some(new_device);
                if self.d.chance(0.5) {
                    abroad(&mut self.d, &mut tx);
                }
                tx.distance_from_home_km =
                    if self.d.chance(0.5) { None } else { Some(self.d.range(500.0, 9000.0).round()) };
            }
            Pattern::ClonedCard => {
                let atm = self.d.chance(0.5);
                tx.merchant_category = if atm { "6011" } else { ["5944", "5732", "5311"][self.d.index(3)] }.into();
                tx.amount = self.d.lognormal(if atm { 5.6 } else { 5.4 }, 0.5);
                tx.card_present = true;
                tx.channel = if atm { "atm" } else { "pos" }.into();
                abroad(&mut self.d, &mut tx);
                tx.distance_from_home_km = Some(self.d.range(1000.0, 9000.0).round());
            }
            Pattern::BustOut => {
                tx.merchant_category = ["5311", "5732", "5944"][self.d.index(3)].into();
                tx.amount = self.d.lognormal(6.0, 0.6);
                tx.account_age_days = 1 + self.d.index(25) as i32;
                tx.card_present = self.d.chance(0.5);
                tx.channel = channel(&mut self.d, &tx.merchant_category.clone(), tx.card_present).into();
                if !tx.card_present {
                    tx.device_id = Some(new_device);
                }
                tx.distance_from_home_km = Some((self.d.exponential(15.0) * 10.0).round() / 10.0);
            }
        }
        tx.merchant_id = format!("m-{}-{:03}", tx.merchant_category, self.d.index(200));
        tx
    }
}

fn channel(d: &mut Dist, mcc: &str, card_present: bool) -> &'static str {
    if mcc == "6011" {
        "atm"
    } else if card_present {
        if d.chance(0.6) { "contactless" } else { "pos" }
    } else if d.chance(0.9) {
        "ecommerce"
    } else {
        "moto"
    }
}

/// Relative transaction intensity by hour of the business day (1.0 at the peak).
fn day_curve(hour: u32) -> f64 {
    match hour {
        0..=5 => 0.15,
        6..=8 => 0.5,
        9..=11 => 0.85,
        12..=13 => 1.0,
        14..=17 => 0.85,
        18..=20 => 0.9,
        _ => 0.45,
    }
}

fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: FraudConfig, n: usize) -> Vec<Simulated> {
        let mut s = FraudSim::new(cfg);
        (0..n).map(|_| s.transaction()).collect()
    }

    fn mean(xs: impl Iterator<Item = f64>) -> f64 {
        let v: Vec<f64> = xs.collect();
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn share<T>(xs: &[T], f: impl Fn(&T) -> bool) -> f64 {
        xs.iter().filter(|x| f(x)).count() as f64 / xs.len() as f64
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a = run(FraudConfig::default(), 2000);
        let b = run(FraudConfig::default(), 2000);
        assert_eq!(a, b);
        let c = run(FraudConfig { seed: 43, ..FraudConfig::default() }, 2000);
        assert_ne!(a[10].tx, c[10].tx);
    }

    #[test]
    fn fraud_rate_and_pattern_features_are_as_configured() {
        let cfg = FraudConfig { fraud_rate: 0.05, ..FraudConfig::default() };
        let xs = run(cfg, 60_000);
        let rate = share(&xs, |s| s.fraud);
        assert!((rate - 0.05).abs() < 0.01, "fraud rate {rate}");
        let legit: Vec<_> = xs.iter().filter(|s| !s.fraud).collect();
        let testing: Vec<_> = xs.iter().filter(|s| s.pattern == Some(Pattern::CardTesting)).collect();
        let takeover: Vec<_> = xs.iter().filter(|s| s.pattern == Some(Pattern::AccountTakeover)).collect();
        let cloned: Vec<_> = xs.iter().filter(|s| s.pattern == Some(Pattern::ClonedCard)).collect();
        assert!(testing.len() > 300 && takeover.len() > 300 && cloned.len() > 300);
        assert!(xs.iter().all(|s| s.pattern != Some(Pattern::BustOut)), "bust-out is off by default");
        // Card testing: tiny, card-not-present amounts; takeover: large; cloned: abroad, card present.
        assert!(testing.iter().all(|s| s.tx.amount <= 4.0 && !s.tx.card_present));
        assert!(mean(takeover.iter().map(|s| s.tx.amount.ln())) > mean(legit.iter().map(|s| s.tx.amount.ln())) + 1.5);
        assert!(cloned.iter().all(|s| s.tx.card_present && s.tx.distance_from_home_km.unwrap() >= 1000.0));
        assert!(share(&legit, |s| s.tx.distance_from_home_km.unwrap_or(0.0) > 1000.0) < 0.05);
        // Legitimate amounts have a heavy right tail: the mean exceeds the median.
        let mut amounts: Vec<f64> = legit.iter().map(|s| s.tx.amount).collect();
        amounts.sort_by(f64::total_cmp);
        assert!(mean(amounts.iter().copied()) > 1.3 * amounts[amounts.len() / 2]);
    }

    #[test]
    fn nights_are_quiet_and_riskier() {
        let xs = run(FraudConfig { fraud_rate: 0.05, ..FraudConfig::default() }, 60_000);
        let hour = |s: &Simulated| ((s.tx.event_time / 3_600_000) % 24) as u32;
        let night: Vec<_> = xs.iter().filter(|s| hour(s) < 6).collect();
        let day: Vec<_> = xs.iter().filter(|s| (9..18).contains(&hour(s))).collect();
        // 6 night hours at 0.15 against 9 day hours at ~0.9.
        assert!((night.len() as f64) < 0.25 * day.len() as f64, "night {} day {}", night.len(), day.len());
        assert!(share(&night, |s| s.fraud) > 1.8 * share(&day, |s| s.fraud));
        assert!(xs.windows(2).all(|w| w[0].tx.event_time <= w[1].tx.event_time), "the business clock only moves on");
    }

    #[test]
    fn amount_drift_changes_amounts_exactly_from_its_index() {
        let at = 20_000u64;
        let cfg = FraudConfig {
            drifts: vec![Drift { kind: DriftKind::Amounts { factor: 3.0 }, at, over: 0 }],
            ..FraudConfig::default()
        };
        let base = run(FraudConfig::default(), 40_000);
        let drifted = run(cfg, 40_000);
        let at = at as usize;
        // Before the index the streams are identical; from it, every amount is tripled (to the cent,
        // and floored at 0.50) and nothing else changes.
        assert_eq!(base[..at], drifted[..at]);
        for (b, d) in base[at..].iter().zip(&drifted[at..]).filter(|(b, _)| b.tx.amount > 0.5) {
            assert!((d.tx.amount - (b.tx.amount * 3.0).max(0.5)).abs() <= 0.02, "{} vs {}", b.tx.amount, d.tx.amount);
            assert_eq!(Transaction { amount: 0.0, ..d.tx.clone() }, Transaction { amount: 0.0, ..b.tx.clone() });
        }
        let before = mean(drifted[at - 5000..at].iter().map(|s| s.tx.amount.ln()));
        let after = mean(drifted[at..at + 5000].iter().map(|s| s.tx.amount.ln()));
        assert!((after - before - 3f64.ln()).abs() < 0.1, "log-amount moved by {}", after - before);
    }

    #[test]
    fn gradual_merchant_drift_ramps_in_and_leaves_fraud_alone() {
        let cfg = FraudConfig {
            drifts: vec![Drift { kind: DriftKind::Merchants, at: 20_000, over: 10_000 }],
            ..FraudConfig::default()
        };
        let xs = run(cfg, 50_000);
        let travel = |s: &&Simulated| !s.fraud && ["4511", "7011"].contains(&s.tx.merchant_category.as_str());
        let window = |lo: usize, hi: usize| {
            let w: Vec<&Simulated> = xs[lo..hi].iter().filter(|s| !s.fraud).collect();
            w.iter().filter(|s| travel(s)).count() as f64 / w.len() as f64
        };
        let (before, mid, after) = (window(15_000, 20_000), window(24_000, 26_000), window(40_000, 50_000));
        assert!(before < 0.01, "travel share before {before}");
        assert!(mid > 0.1 && mid < 0.3, "half-way {mid}");
        assert!(after > 0.35, "after {after}");
        let fraud_share = |lo: usize, hi: usize| share(&xs[lo..hi], |s| s.fraud);
        assert!((fraud_share(0, 20_000) - fraud_share(30_000, 50_000)).abs() < 0.004);
    }

    #[test]
    fn a_fraud_wave_multiplies_the_share_of_fraud_from_its_index() {
        let cfg = FraudConfig {
            fraud_rate: 0.02,
            drifts: vec![Drift::parse("fraud-rate:4,at=20000").unwrap()],
            ..FraudConfig::default()
        };
        let xs = run(cfg, 40_000);
        let (before, after) = (share(&xs[..20_000], |s| s.fraud), share(&xs[20_000..], |s| s.fraud));
        assert!((after / before - 4.0).abs() < 0.8, "fraud share {before} then {after}");
        assert!(Drift::parse("fraud-rate,at=1").is_err() && Drift::parse("fraud-rate:-1,at=1").is_err());
    }

    #[test]
    fn concept_drift_starts_and_stops_patterns_at_their_index() {
        let cfg = FraudConfig {
            fraud_rate: 0.05,
            drifts: vec![
                Drift { kind: DriftKind::PatternStarts(Pattern::BustOut), at: 10_000, over: 0 },
                Drift { kind: DriftKind::PatternStops(Pattern::CardTesting), at: 10_000, over: 0 },
            ],
            ..FraudConfig::default()
        };
        let xs = run(cfg, 30_000);
        let first = |p: Pattern| xs.iter().position(|s| s.pattern == Some(p));
        let last = |p: Pattern| xs.iter().rposition(|s| s.pattern == Some(p));
        assert!(first(Pattern::BustOut).unwrap() >= 10_000);
        assert!(first(Pattern::BustOut).unwrap() < 10_200, "bust-out starts right away");
        assert!(last(Pattern::CardTesting).unwrap() < 10_000);
        assert!(
            xs[10_000..].iter().filter(|s| s.pattern == Some(Pattern::BustOut)).all(|s| s.tx.account_age_days <= 25)
        );
    }

    #[test]
    fn drift_specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            Drift::parse("amounts:3,at=500,over=100").unwrap(),
            Drift { kind: DriftKind::Amounts { factor: 3.0 }, at: 500, over: 100 }
        );
        assert_eq!(
            Drift::parse("pattern-starts:bust-out,at=7").unwrap().kind,
            DriftKind::PatternStarts(Pattern::BustOut)
        );
        assert!(Drift::parse("amounts:3").unwrap_err().contains("at=N"));
        assert!(Drift::parse("pattern-starts:ufo,at=1").unwrap_err().contains("card-testing"));
        assert!(Drift::parse("weather,at=1").unwrap_err().contains("unknown kind"));
    }
}
