//! Load and fault tests: bounded in count and time, loopback only.
//!
//! Many client threads against one real Gateway: exact rate-limit and
//! in-flight counts under concurrency, no acknowledged write lost to
//! `kill -9`, a clean drain on SIGTERM, and bounded memory for many clients.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

const TRUSTED_PROXY: &str = "127.0.0.1";

/// An authenticated request for the standard route, as raw bytes.
fn request_for(forwarded_for: Option<&str>, close: bool, body: &str) -> Vec<u8> {
    let mut extra = Vec::new();
    if close {
        extra.push(("connection", "close"));
    }
    if let Some(ip) = forwarded_for {
        extra.push(("x-forwarded-for", ip));
    }
    post_json(ROUTE_PATH, SECRET, &extra, body)
}

/// Sends one action on a fresh `Connection: close` connection. Never
/// panics: connection failures are outcomes.
fn try_action(addr: SocketAddr, body: &Value) -> Outcome {
    Client::new(addr).try_send(&request_for(None, true, &body.to_string()))
}

/// A count that client threads raise and the test waits on.
#[derive(Default)]
struct Progress {
    count: Mutex<usize>,
    raised: Condvar,
}

impl Progress {
    fn add(&self) {
        *self.count.lock().unwrap() += 1;
        self.raised.notify_all();
    }

    fn get(&self) -> usize {
        *self.count.lock().unwrap()
    }

    /// Waits until the count reaches `n`, for at most `limit`; returns the
    /// count then.
    fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let count = self.count.lock().unwrap();
        let (count, _) = self
            .raised
            .wait_timeout_while(count, limit, |c| *c < n)
            .unwrap();
        *count
    }
}

/// Tallies of status codes, and of `code`s among refusals.
#[derive(Debug, Default)]
struct Tally {
    statuses: HashMap<u16, usize>,
    codes: HashMap<String, usize>,
}

impl Tally {
    fn add(&mut self, res: &Response) {
        *self.statuses.entry(res.status).or_default() += 1;
        if res.status != 200 {
            let code = res.json["code"].as_str().unwrap_or("<not json>").to_owned();
            *self.codes.entry(code).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
    }

    fn status(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    fn code(&self, code: &str) -> usize {
        self.codes.get(code).copied().unwrap_or(0)
    }
}

/// Runs `threads` closures that start together; returns their results.
fn together<T: Send + 'static>(
    threads: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(threads));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (barrier, work) = (Arc::clone(&barrier), Arc::clone(&work));
            std::thread::spawn(move || {
                barrier.wait();
                work(t)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

const LIST: &str = r#"{"action":"list_flows"}"#;

#[test]
fn under_concurrent_load_the_rate_limit_admits_exactly_its_max_per_window() {
    let gw = Gateway::start(&limited(
        json!({"rateLimitMaxRequests": 50, "rateLimitWindowMs": 60_000, "maxInFlight": 64}),
        json!({}),
    ));
    let addr = gw.addr;
    let tallies = together(8, move |_| {
        let mut client = Client::new(addr);
        let mut tally = Tally::default();
        for _ in 0..20 {
            let res = client.send(&request_for(None, false, LIST));
            if res.status == 429 {
                let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
            }
            tally.add(&res);
        }
        tally
    });
    let mut total = Tally::default();
    tallies.into_iter().for_each(|t| total.merge(t));
    assert_eq!(total.status(200), 50, "{total:?}");
    assert_eq!(total.status(429), 110, "{total:?}");
    assert_eq!(total.code("rate_limited"), 110, "{total:?}");
}

#[test]
fn under_concurrent_load_each_forwarded_client_gets_exactly_its_own_max() {
    let gw = Gateway::start(&limited(
        json!({"rateLimitMaxRequests": 20, "rateLimitWindowMs": 60_000, "maxInFlight": 64}),
        json!({"trustedProxies": [TRUSTED_PROXY]}),
    ));
    let addr = gw.addr;
    const CLIENTS: usize = 5;
    // 6 threads x 30 requests, round robin: 36 requests for each client.
    let tallies = together(6, move |t| {
        let mut client = Client::new(addr);
        let mut tallies: Vec<Tally> = (0..CLIENTS).map(|_| Tally::default()).collect();
        for i in 0..30 {
            let c = (t + i) % CLIENTS;
            // Spoofed hops left of the client and trusted hops right of it
            // must not change whose budget is spent.
            let forwarded = match i % 3 {
                0 => format!("203.0.113.{c}"),
                1 => format!("198.51.100.{i}, 203.0.113.{c}"),
                _ => format!("203.0.113.{c}, {TRUSTED_PROXY}"),
            };
            let res = client.send(&request_for(Some(&forwarded), false, LIST));
            tallies[c].add(&res);
        }
        tallies
    });
    let mut per_client: Vec<Tally> = (0..CLIENTS).map(|_| Tally::default()).collect();
    for thread in tallies {
        for (c, t) in thread.into_iter().enumerate() {
            per_client[c].merge(t);
        }
    }
    for (c, t) in per_client.iter().enumerate() {
        assert_eq!(t.status(200), 20, "client {c}: {t:?}");
        assert_eq!(t.status(429), 16, "client {c}: {t:?}");
        assert_eq!(t.code("rate_limited"), 16, "client {c}: {t:?}");
    }
}

/// Opens a request that sends its head and part of its body and returns
/// once the server has admitted or refused it: an admitted one holds its
/// in-flight slot until the rest of its body is sent. A reader thread
/// reports its response on `done`. Returns the stream to finish the body on.
/// Starts a request that, once admitted, holds its slot until the rest of
/// its body is sent; a refused one reports its refusal at once.
fn open_held(
    addr: SocketAddr,
    idx: usize,
    done: mpsc::Sender<(usize, Response)>,
) -> Option<TcpStream> {
    let framing = format!("connection: close\r\ncontent-length: {}\r\n", LIST.len());
    match begin_request_expecting_continue(addr, &framing, &LIST.as_bytes()[..10]) {
        Ok(stream) => {
            let mut reader = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = done.send((idx, read_response(&mut reader)));
            });
            Some(stream)
        }
        Err(refused) => {
            let _ = done.send((idx, *refused));
            None
        }
    }
}

#[test]
fn the_in_flight_limit_is_never_exceeded_under_concurrent_load() {
    const MAX: usize = 3;
    const CONCURRENT: usize = 12;
    let gw = Gateway::start(&limited(
        json!({"maxInFlight": MAX, "rateLimitMaxRequests": 10_000}),
        json!({}),
    ));
    for round in 0..4 {
        let (tx, rx) = mpsc::channel();
        let addr = gw.addr;
        // All connections open at once; each holds its slot, if it got
        // one, until the rest of its body is sent.
        let mut held: Vec<Option<TcpStream>> =
            together(CONCURRENT, move |i| open_held(addr, i, tx.clone()));
        // Everyone beyond the limit is refused at once, while the admitted
        // still hold their slots.
        for _ in 0..CONCURRENT - MAX {
            let (i, res) = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    panic!("round {round}: fewer than {} refusals", CONCURRENT - MAX)
                });
            assert_eq!(res.status, 429, "round {round}: {}", res.text);
            assert_eq!(res.json["code"], "in_flight_limited", "round {round}");
            assert_eq!(res.header("retry-after"), Some("1"));
            held[i] = None;
        }
        let admitted: Vec<usize> = (0..CONCURRENT).filter(|i| held[*i].is_some()).collect();
        assert_eq!(admitted.len(), MAX, "round {round}");
        // The admitted still hold every slot: one more is refused, and none
        // of them was answered before its body was sent.
        let probe = Client::new(addr).send(&request_for(None, true, LIST));
        assert_eq!(probe.json["code"], "in_flight_limited", "round {round}");
        assert!(
            rx.try_recv().is_err(),
            "round {round}: a request holding its slot was answered before its body was sent"
        );
        for i in &admitted {
            let stream = held[*i].as_mut().unwrap();
            stream.write_all(&LIST.as_bytes()[10..]).unwrap();
        }
        for _ in 0..MAX {
            let (i, res) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert!(admitted.contains(&i));
            assert_eq!(res.status, 200, "round {round}: {}", res.text);
            assert_eq!(res.json["ok"], true);
        }
    }
}

/// One flow as its client last saw it acknowledged, and whether a later
/// write was sent without an answer (it may or may not have applied).
#[derive(Debug, Clone)]
struct Acked {
    view: Value,
    unanswered: Option<Value>,
}

fn flow_revision(view: &Value) -> u64 {
    view["revision"].as_u64().unwrap()
}

/// The mutation a client sends next on a flow at `view`.
fn next_mutation(view: &Value, t: usize, step: u64) -> Value {
    let id = &view["flowId"];
    let rev = flow_revision(view);
    if view["status"] == "waiting" {
        json!({"action": "resume_flow", "flowId": id, "expectedRevision": rev, "status": "running",
               "stateJson": {"thread": t, "step": step}})
    } else {
        json!({"action": "set_waiting", "flowId": id, "expectedRevision": rev,
               "currentStep": format!("s{step}"), "waitJson": {"step": step}})
    }
}

#[test]
fn kill_9_during_a_write_load_loses_no_acknowledged_write() {
    const THREADS: usize = 4;
    const MUTATIONS_PER_FLOW: u64 = 4;
    let config = limited(
        json!({"rateLimitMaxRequests": 1_000_000, "maxInFlight": 64}),
        json!({}),
    );
    let gw = Gateway::start(&config);
    let addr = gw.addr;
    let acked_writes = Arc::new(Progress::default());
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (acked_writes, unexpected) = (Arc::clone(&acked_writes), Arc::clone(&unexpected));
            std::thread::spawn(move || {
                let mut flows: Vec<Acked> = Vec::new();
                // Bounded, but far more than the kill leaves time for.
                'flows: for n in 0..10_000 {
                    let create = json!({"action": "create_flow", "goal": format!("t{t}-{n}"),
                                        "stateJson": {"thread": t, "n": n}});
                    let mut view = match try_action(addr, &create) {
                        Outcome::Answered(res) if res.status == 200 => {
                            res.json["result"]["flow"].clone()
                        }
                        Outcome::Answered(res) => {
                            unexpected.lock().unwrap().push(res.text);
                            break;
                        }
                        _ => break,
                    };
                    acked_writes.add();
                    flows.push(Acked {
                        view: view.clone(),
                        unanswered: None,
                    });
                    for step in 0..MUTATIONS_PER_FLOW {
                        let mutation = next_mutation(&view, t, step);
                        match try_action(addr, &mutation) {
                            Outcome::Answered(res) if res.status == 200 => {
                                view = res.json["result"]["flow"].clone();
                                flows.last_mut().unwrap().view = view.clone();
                                acked_writes.add();
                            }
                            Outcome::Answered(res) => {
                                unexpected.lock().unwrap().push(res.text);
                                break 'flows;
                            }
                            _ => {
                                flows.last_mut().unwrap().unanswered = Some(mutation);
                                break 'flows;
                            }
                        }
                    }
                }
                flows
            })
        })
        .collect();
    let at_kill = acked_writes.wait_for(300, Duration::from_secs(20));
    assert!(at_kill >= 300, "the load stalled at {at_kill} writes");
    let dir = gw.kill9();
    let flows: Vec<Acked> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(*unexpected.lock().unwrap(), Vec::<String>::new());

    let gw = Gateway::start_in(dir, &config, &[]);
    let mut applied_unanswered = 0;
    for acked in &flows {
        let got = gw.action(json!({"action": "get_flow", "flowId": acked.view["flowId"]}));
        assert_eq!(got.status, 200, "{}", got.text);
        let flow = &got.json["result"]["flow"];
        assert_ne!(
            flow,
            &Value::Null,
            "acknowledged flow {} is gone",
            acked.view["flowId"]
        );
        let (now, then) = (flow_revision(flow), flow_revision(&acked.view));
        assert!(
            now >= then,
            "revision {now} is behind the acknowledged {then}: {flow}"
        );
        if now == then {
            assert_eq!(
                *flow, acked.view,
                "the acknowledged view reads back exactly"
            );
        } else {
            // Only the one write sent without an answer may have applied.
            let sent = acked.unanswered.as_ref().unwrap_or_else(|| {
                panic!("revision {now} > acknowledged {then} with nothing unanswered: {flow}")
            });
            assert_eq!(now, then + 1, "{flow}");
            match sent["action"].as_str().unwrap() {
                "resume_flow" => {
                    assert_eq!(flow["status"], "running");
                    assert_eq!(flow["stateJson"], sent["stateJson"]);
                }
                _ => {
                    assert_eq!(flow["status"], "waiting");
                    assert_eq!(flow["waitJson"], sent["waitJson"]);
                }
            }
            applied_unanswered += 1;
        }
    }
    let listed = gw.action(json!({"action": "list_flows"}));
    let listed = listed.json["result"]["flows"].as_array().unwrap().len();
    // Creates sent without an answer may exist too: at most one per thread.
    assert!(
        (flows.len()..=flows.len() + THREADS).contains(&listed),
        "{listed} flows listed, {} acknowledged",
        flows.len()
    );
    eprintln!(
        "kill -9: {} acknowledged writes on {} flows; {} unanswered writes applied",
        acked_writes.get(),
        flows.len(),
        applied_unanswered
    );
}

#[test]
fn sigterm_during_load_drains_complete_responses_and_exits_zero() {
    const THREADS: usize = 4;
    let mut config = limited(
        json!({"rateLimitMaxRequests": 1_000_000, "maxInFlight": 64}),
        json!({}),
    );
    let grace = Duration::from_secs(5);
    config["gateway"]["shutdownGraceMs"] = json!(grace.as_millis() as u64);
    let mut gw = Gateway::start(&config);
    let addr = gw.addr;
    let answered = Arc::new(Progress::default());
    let signalled = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (answered, signalled) = (Arc::clone(&answered), Arc::clone(&signalled));
            std::thread::spawn(move || {
                let mut created = Vec::new();
                let mut bad = Vec::new();
                let mut after_signal = 0;
                for n in 0..100_000 {
                    let body = if n % 2 == 0 {
                        json!({"action": "create_flow", "goal": format!("t{t}-{n}")})
                    } else {
                        json!({"action": "list_flows"})
                    };
                    let was_signalled = signalled.load(Ordering::SeqCst);
                    match try_action(addr, &body) {
                        Outcome::Answered(res) => {
                            answered.add();
                            after_signal += usize::from(was_signalled);
                            let json_type = res.header("content-type")
                                == Some("application/json; charset=utf-8");
                            if res.status != 200 || res.json["ok"] != true || !json_type {
                                bad.push(format!("{} {:?} {}", res.status, res.headers, res.text));
                            } else if n % 2 == 0 {
                                created.push(res.json["result"]["flow"]["flowId"].clone());
                            }
                        }
                        Outcome::Truncated(raw) => bad.push(format!("truncated: {raw:?}")),
                        Outcome::NoResponse => break,
                    }
                }
                (created, bad, after_signal)
            })
        })
        .collect();
    // A request admitted and in the middle of its body when the signal comes.
    let body = json!({"action": "create_flow", "goal": "slow"}).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() - 5);
    let framing = format!("connection: close\r\ncontent-length: {}\r\n", body.len());
    let mut slow = begin_request_until_continue(addr, &framing, first);

    let before_signal = answered.wait_for(200, Duration::from_secs(20));
    assert!(before_signal >= 200, "the load stalled at {before_signal}");
    signalled.store(true, Ordering::SeqCst);
    let signalled_at = Instant::now();
    gw.signal(libc::SIGTERM);
    // The rest of its body comes once the server has stopped accepting
    // (actix logs this through the Gateway's logger) and is draining.
    gw.wait_for_log("accept thread stopped");
    slow.write_all(rest).unwrap();
    let slow = read_response(&mut slow);
    assert_eq!(slow.status, 200, "{}", slow.text);
    assert_eq!(slow.json["result"]["flow"]["goal"], "slow");

    let status = gw.wait(grace + Duration::from_secs(5));
    let took = signalled_at.elapsed();
    assert_eq!(status.code(), Some(0), "{}", gw.logs());
    assert!(took < grace, "exit took {took:?}, grace {grace:?}");
    assert!(TcpStream::connect(addr).is_err(), "no longer accepting");

    let mut created = vec![slow.json["result"]["flow"]["flowId"].clone()];
    let mut answered_after_signal = 0;
    for h in handles {
        let (ids, bad, late) = h.join().unwrap();
        assert_eq!(bad, Vec::<String>::new());
        created.extend(ids);
        answered_after_signal += late;
    }
    eprintln!(
        "SIGTERM: {} answered requests, {answered_after_signal} of them sent after the signal; exit after {took:?}",
        answered.get()
    );
    let logs = gw.logs();
    assert!(logs.contains("draining in-flight requests"), "{logs}");
    assert!(logs.contains("stopped"), "{logs}");
    // What was acknowledged before the clean stop is in the store.
    let gw = Gateway::start_in(gw.kill9(), &config, &[]);
    for id in &created {
        let got = gw.action(json!({"action": "get_flow", "flowId": id}));
        assert_eq!(got.json["result"]["flow"]["flowId"], *id, "{}", got.text);
    }
}

/// The `n`th distinct client address (n < 2^16).
fn client_ip(n: usize) -> String {
    format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255)
}

/// Sends one `list_flows` from each of `clients`, spread over `threads`
/// keep-alive connections; returns the tally and the connections made.
fn one_request_each(addr: SocketAddr, clients: Vec<usize>, threads: usize) -> (Tally, usize) {
    let clients = Arc::new(clients);
    let results = together(threads, move |t| {
        let mut client = Client::new(addr);
        let mut tally = Tally::default();
        for n in clients.iter().skip(t).step_by(threads) {
            let res = client.send(&request_for(Some(&client_ip(*n)), false, LIST));
            tally.add(&res);
        }
        (tally, client.connects())
    });
    let mut total = Tally::default();
    let mut connects = 0;
    for (t, c) in results {
        total.merge(t);
        connects += c;
    }
    (total, connects)
}

#[test]
fn ten_thousand_client_addresses_keep_memory_bounded_and_share_the_overflow_bucket() {
    const TRACKED: usize = 1_000;
    const CLIENTS: usize = 10_000;
    const MAX: usize = 5;
    // The in-process limiter's key table.
    let gw = Gateway::start_embedded(&limited(
        json!({"maxTrackedKeys": TRACKED, "rateLimitMaxRequests": MAX, "rateLimitWindowMs": 60_000}),
        json!({"trustedProxies": [TRUSTED_PROXY]}),
    ));
    let started = Instant::now();
    let before = gw.rss_kib();

    // The first clients fill the key table; each has its own budget.
    let (first, _) = one_request_each(gw.addr, (0..TRACKED).collect(), 4);
    assert_eq!(first.status(200), TRACKED, "{first:?}");
    let filled = gw.rss_kib();

    // Every later client shares one overflow bucket of MAX.
    let (rest, connects) = one_request_each(gw.addr, (TRACKED..CLIENTS).collect(), 4);
    assert_eq!(rest.status(200), MAX, "{rest:?}");
    assert_eq!(rest.status(429), CLIENTS - TRACKED - MAX, "{rest:?}");
    assert_eq!(rest.code("rate_limited"), CLIENTS - TRACKED - MAX);
    let after = gw.rss_kib();

    // Tracked clients kept their own windows: MAX - 1 more, then refused.
    let mut client = Client::new(gw.addr);
    let tracked = client_ip(7);
    for _ in 1..MAX {
        let res = client.send(&request_for(Some(&tracked), false, LIST));
        assert_eq!(res.status, 200, "{}", res.text);
    }
    let res = client.send(&request_for(Some(&tracked), false, LIST));
    assert_eq!(res.json["code"], "rate_limited");
    // A brand-new client lands in the spent overflow bucket.
    let res = client.send(&request_for(Some(&client_ip(CLIENTS + 1)), false, LIST));
    assert_eq!(res.json["code"], "rate_limited");

    let growth = after.saturating_sub(before);
    eprintln!(
        "RSS: {before} KiB at start, {filled} KiB after {TRACKED} clients, {after} KiB after {CLIENTS} \
         ({growth} KiB growth, {connects} connections, {:?})",
        started.elapsed()
    );
    assert!(
        growth < 20 * 1024,
        "RSS grew by {growth} KiB ({before} -> {after})"
    );
}
