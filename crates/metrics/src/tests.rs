//! Scrapes the server over raw TCP and checks the exposition with a strict text-format parser.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use super::*;

// ---------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text exposition format 0.0.4.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    kind: Option<String>,
    help: Option<String>,
    samples: Vec<Sample>,
}

#[derive(Debug, Default)]
struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The value of the sample `name{labels}` (exactly these labels), if present.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name && s.labels == labels)
            .map(|s| s.value)
    }

    /// Like [`value`](Self::value), for a sample that must be there.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    fn samples(&self, family: &str) -> &[Sample] {
        self.families.get(family).map_or(&[], |f| &f.samples)
    }

    fn kind(&self, family: &str) -> Option<&str> {
        self.families.get(family)?.kind.as_deref()
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Go-style float as Prometheus writes it: `+Inf`, `-Inf`, `NaN` or a decimal/exponent number.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            text.parse().map_err(|e| format!("bad value {text:?}: {e}"))
        }
        _ => Err(format!("bad value {text:?}")),
    }
}

fn unescape(text: &str, allow_quote: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if allow_quote => out.push('"'),
            other => return Err(format!("bad escape \\{other:?} in {text:?}")),
        }
    }
    Ok(out)
}

/// `{name="value",...}` at the start of `text`: the labels and the rest of `text`.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or_else(|| format!("label without = in {text:?}"))?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, '\n') => return Err("line feed in label value".into()),
                _ => {}
            }
        }
        let end = end.ok_or("unterminated label value")?;
        let value = unescape(&rest[..end], true)?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name:?}"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after label {name:?}"));
        }
    }
}

/// The family a sample named `name` belongs to: its own name if typed, else the base name of a
/// histogram (`_bucket`, `_sum`, `_count`) or summary (`_sum`, `_count`).
fn family_of(families: &BTreeMap<String, Family>, name: &str) -> Result<String, String> {
    if families.get(name).is_some_and(|f| f.kind.is_some()) {
        return Ok(name.to_string());
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"]),
        ("_count", &["histogram", "summary"]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .and_then(|f| f.kind.as_deref())
                .is_some_and(|k| kinds.contains(&k))
            {
                return Ok(base.to_string());
            }
        }
    }
    Err(format!("sample {name} has no TYPE line before it"))
}

fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("exposition does not end with a line feed".into());
    }
    for (number, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let (keyword, rest) =
                comment.split_once(' ').ok_or_else(|| at("bad comment".into()))?;
            let (name, rest) = rest.split_once(' ').ok_or_else(|| at("no text".into()))?;
            if !valid_metric_name(name) {
                return Err(at("bad metric name".into()));
            }
            let family = families.entry(name.to_string()).or_default();
            if !family.samples.is_empty() {
                return Err(at("HELP/TYPE after samples".into()));
            }
            match keyword {
                "HELP" => {
                    if family.help.replace(unescape(rest, false).map_err(at)?).is_some() {
                        return Err(at("second HELP".into()));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                        return Err(at("unknown type".into()));
                    }
                    if family.kind.replace(rest.to_string()).is_some() {
                        return Err(at("second TYPE".into()));
                    }
                }
                _ => return Err(at("a comment that is neither HELP nor TYPE".into())),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("bad comment".into()));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest.strip_prefix(' ').ok_or_else(|| at("no space before value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(timestamp) = fields.next() {
            timestamp.parse::<i64>().map_err(|e| at(format!("bad timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family_name = family_of(&families, name).map_err(at)?;
        if current.as_deref() != Some(family_name.as_str()) {
            if closed.contains(&family_name) {
                return Err(at("samples of a family are not contiguous".into()));
            }
            if let Some(previous) = current.replace(family_name.clone()) {
                closed.insert(previous);
            }
        }
        if !series.insert((name.to_string(), labels.clone())) {
            return Err(at("duplicate series".into()));
        }
        let family = families.get_mut(&family_name).expect("family_of found it");
        if family.kind.as_deref() == Some("counter") && (value.is_nan() || value < 0.0) {
            return Err(at("negative or NaN counter".into()));
        }
        family.samples.push(Sample { name: name.to_string(), labels, value });
    }
    for (name, family) in &families {
        if family.kind.as_deref() == Some("histogram") {
            check_histogram(name, &family.samples)?;
        }
    }
    Ok(Exposition { families })
}

/// Buckets ascend with non-decreasing counts and end at `+Inf` = `_count`, with a `_sum`.
fn check_histogram(name: &str, samples: &[Sample]) -> Result<(), String> {
    let mut by_labels: BTreeMap<BTreeMap<String, String>, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        let mut labels = sample.labels.clone();
        labels.remove("le");
        by_labels.entry(labels).or_default().push(sample);
    }
    for (labels, samples) in by_labels {
        let mut buckets = Vec::new();
        let (mut sum, mut count) = (None, None);
        for sample in samples {
            match sample.name.strip_prefix(name) {
                Some("_bucket") => {
                    let le = sample
                        .labels
                        .get("le")
                        .ok_or_else(|| format!("{name}: bucket without le"))?;
                    buckets.push((parse_value(le)?, sample.value));
                }
                Some("_sum") => sum = Some(sample.value),
                Some("_count") => count = Some(sample.value),
                _ => return Err(format!("{name}: stray sample {}", sample.name)),
            }
        }
        let count = count.ok_or_else(|| format!("{name}{labels:?}: no _count"))?;
        sum.ok_or_else(|| format!("{name}{labels:?}: no _sum"))?;
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("{name}{labels:?}: last bucket is not +Inf"));
        }
        for pair in buckets.windows(2) {
            if !(pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1) {
                return Err(format!("{name}{labels:?}: buckets out of order {pair:?}"));
            }
        }
        if buckets.last().map(|b| b.1) != Some(count) {
            return Err(format!("{name}{labels:?}: +Inf bucket != _count"));
        }
    }
    Ok(())
}

#[test]
fn parser_rejects_malformed_expositions() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n\n";
    assert_eq!(parse_exposition(ok).unwrap().get("a_total", &[("x", "1\"")]), 3.0);
    for bad in [
        "a_total 3\n",                                                    // no TYPE
        "# TYPE a gauge\na inf\n",                                        // Rust float syntax
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",                   // duplicate series
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"\"} 1\n",        // not contiguous
        "# TYPE a gauge\na{x=1} 1\n",                                     // unquoted label
        "# TYPE a counter\na -1\n",                                       // negative counter
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n", // no +Inf bucket
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE a gauge\na 1", // no final line feed
        "# random comment\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `request` as is and reads the response until the server closes the connection.
fn http(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let raw = std::str::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().expect("status code");
    assert!(parts.next().is_some_and(|reason| !reason.is_empty()), "{status_line}");
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(": ").expect("header line");
            (name.to_ascii_lowercase(), value.to_string())
        })
        .collect();
    HttpResponse { status, headers, body: body.to_string() }
}

fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http(addr, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n").as_bytes())
}

/// `GET /metrics`, checked and parsed.
fn scrape(addr: SocketAddr) -> Exposition {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(response.headers["content-length"], response.body.len().to_string());
    assert_eq!(response.headers["connection"], "close");
    parse_exposition(&response.body).unwrap_or_else(|e| panic!("{e}\n{}", response.body))
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

fn contracts(prefix: &str, counts: &[u64]) -> Vec<(String, u64)> {
    counts.iter().enumerate().map(|(i, c)| (format!("{prefix}{i:02}"), *c)).collect()
}

fn block_one() -> BlockReport {
    BlockReport {
        number: 1,
        transactions: 10,
        gas_used: 1_000_000,
        engine: "parallel",
        execution_seconds: 0.002,
        state_root_seconds: 0.003,
        commit_seconds: 0.0004,
        executions: 12,
        re_executions: 2,
        validations: 15,
        aborts: 2,
        suspensions: 1,
        storage_credits: 3,
        learned_chain: false,
        critical_path_bound: Some(4.0),
        speedup: Some(2.0),
        worker_utilisation: Some(0.5),
        workers: 0,
        hot_contracts: contracts("0xa", &[3, 1, 2]),
        hot_slots: vec![("0xa00".into(), "0x01".into(), 2)],
    }
}

fn block_two() -> BlockReport {
    BlockReport {
        number: 2,
        transactions: 20,
        gas_used: 3_000_000,
        engine: "sequential",
        execution_seconds: 0.02,
        state_root_seconds: 0.03,
        commit_seconds: 0.004,
        executions: 20,
        validations: 0,
        learned_chain: true,
        ..BlockReport::default()
    }
}

fn block_three() -> BlockReport {
    // 12 contracts, one listed twice (merged), one with zero conflicts (dropped).
    let mut hot_contracts = contracts("0xc", &[5, 9, 1, 7, 7, 2, 8, 3, 4, 6, 0, 10]);
    hot_contracts.push(("0xc02".into(), 10)); // 0xc02 becomes 11, rank 1
    BlockReport {
        number: 3,
        transactions: 5,
        gas_used: 500_000,
        engine: "parallel",
        execution_seconds: 0.2,
        state_root_seconds: 0.3,
        commit_seconds: 0.04,
        executions: 7,
        re_executions: 2,
        validations: 9,
        aborts: 3,
        suspensions: 4,
        storage_credits: 1,
        learned_chain: false,
        critical_path_bound: Some(2.0),
        speedup: Some(1.5),
        worker_utilisation: Some(0.75),
        workers: 0,
        hot_contracts,
        hot_slots: vec![
            ("0xc00".into(), "0x\"quoted\\slot\"".into(), 4),
            ("0xc01".into(), "0x02".into(), 6),
        ],
    }
}

#[test]
fn scrape_reports_exact_values() {
    let metrics = Metrics::new();
    metrics.set_build_info("0.1.0-test");
    for block in [block_one(), block_two(), block_three()] {
        metrics.record_block(&block);
    }
    metrics.record_import_error("decode");
    metrics.record_import_error("decode");
    metrics.record_import_error("execution");

    let server = metrics.serve(loopback()).expect("serve");
    assert_eq!(server.local_addr().ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(server.local_addr().port(), 0);
    let e = scrape(server.local_addr());

    // Counters.
    assert_eq!(e.kind("velarium_blocks_total"), Some("counter"));
    assert_eq!(e.get("velarium_blocks_total", &[("engine", "parallel")]), 2.0);
    assert_eq!(e.get("velarium_blocks_total", &[("engine", "sequential")]), 1.0);
    assert_eq!(e.samples("velarium_blocks_total").len(), 2);
    for (name, value) in [
        ("velarium_transactions_total", 35.0),
        ("velarium_gas_total", 4_500_000.0),
        ("velarium_executions_total", 39.0),
        ("velarium_re_executions_total", 4.0),
        ("velarium_validations_total", 24.0),
        ("velarium_aborts_total", 5.0),
        ("velarium_suspensions_total", 5.0),
        ("velarium_storage_credits_total", 4.0),
        ("velarium_learned_chain_blocks_total", 1.0),
    ] {
        assert_eq!(e.kind(name), Some("counter"), "{name}");
        assert_eq!(e.get(name, &[]), value, "{name}");
    }
    assert_eq!(e.get("velarium_import_errors_total", &[("kind", "decode")]), 2.0);
    assert_eq!(e.get("velarium_import_errors_total", &[("kind", "execution")]), 1.0);

    // Gauges.
    assert_eq!(e.kind("velarium_head_block_number"), Some("gauge"));
    assert_eq!(e.get("velarium_head_block_number", &[]), 3.0);
    let seconds = 0.002 + 0.003 + 0.0004 + 0.02 + 0.03 + 0.004 + 0.2 + 0.3 + 0.04;
    let mgas = e.get("velarium_mgas_per_second", &[]);
    assert!((mgas - 4.5 / seconds).abs() < 1e-9, "{mgas}");
    // Bound and speedup from the last block reporting them; block two reported neither.
    assert_eq!(e.get("velarium_critical_path_bound", &[]), 2.0);
    assert_eq!(e.get("velarium_speedup", &[]), 1.5);
    assert_eq!(e.get("velarium_bound_efficiency", &[]), 0.75);
    assert_eq!(e.get("velarium_worker_utilisation", &[]), 0.75);
    assert_eq!(e.get("velarium_build_info", &[("version", "0.1.0-test")]), 1.0);

    // Histograms.
    for (name, values) in [
        ("velarium_block_execution_seconds", [0.002, 0.02, 0.2]),
        ("velarium_state_root_seconds", [0.003, 0.03, 0.3]),
        ("velarium_commit_seconds", [0.0004, 0.004, 0.04]),
    ] {
        assert_eq!(e.kind(name), Some("histogram"), "{name}");
        assert_eq!(e.get(&format!("{name}_count"), &[]), 3.0, "{name}");
        let sum = e.get(&format!("{name}_sum"), &[]);
        assert!((sum - values.iter().sum::<f64>()).abs() < 1e-12, "{name}: {sum}");
        let buckets: Vec<_> = e
            .samples(name)
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .map(|s| (parse_value(&s.labels["le"]).unwrap(), s.value))
            .collect();
        assert_eq!(buckets.len(), SECONDS_BUCKETS.len() + 1, "{name}");
        for (le, count) in buckets {
            let expected = values.iter().filter(|v| **v <= le).count() as f64;
            assert_eq!(count, expected, "{name} le={le}");
        }
    }

    // Hot contracts of block three only: merged, zero dropped, top 10 by count.
    assert_eq!(e.kind("velarium_hot_contract_conflicts"), Some("gauge"));
    let hot: Vec<_> = e
        .samples("velarium_hot_contract_conflicts")
        .iter()
        .map(|s| (s.labels["rank"].clone(), s.labels["address"].clone(), s.value))
        .collect();
    let expected = [
        ("0xc02", 11.0),
        ("0xc11", 10.0),
        ("0xc01", 9.0),
        ("0xc06", 8.0),
        ("0xc03", 7.0),
        ("0xc04", 7.0),
        ("0xc09", 6.0),
        ("0xc00", 5.0),
        ("0xc08", 4.0),
        ("0xc07", 3.0),
    ];
    assert_eq!(hot.len(), HOT_TOP_K);
    for (rank, ((r, address, value), (want_address, want_value))) in
        hot.iter().zip(expected).enumerate()
    {
        assert_eq!(
            (r.as_str(), address.as_str(), *value),
            ((rank + 1).to_string().as_str(), want_address, want_value)
        );
    }
    assert_eq!(
        e.get(
            "velarium_hot_slot_conflicts",
            &[("rank", "1"), ("address", "0xc01"), ("slot", "0x02")]
        ),
        6.0
    );
    assert_eq!(
        e.get(
            "velarium_hot_slot_conflicts",
            &[("rank", "2"), ("address", "0xc00"), ("slot", "0x\"quoted\\slot\"")]
        ),
        4.0
    );
    assert_eq!(e.samples("velarium_hot_slot_conflicts").len(), 2);

    // Every family is described and typed.
    for (name, family) in &e.families {
        assert!(name.starts_with("velarium_"), "{name}");
        assert!(family.help.as_deref().is_some_and(|h| !h.is_empty()), "{name} has no HELP");
        assert!(family.kind.is_some(), "{name} has no TYPE");
    }
    assert_eq!(e.families.len(), 23, "{:?}", e.families.keys().collect::<Vec<_>>());

    // render() serves the same text.
    let rendered = parse_exposition(&metrics.render()).unwrap();
    assert_eq!(rendered.families.keys().collect::<Vec<_>>(), e.families.keys().collect::<Vec<_>>());
    server.shutdown();
}

#[test]
fn hot_label_cardinality_stays_bounded() {
    let metrics = Metrics::new();
    let server = metrics.serve(loopback()).unwrap();
    for block in 0..50u64 {
        let prefix = format!("0x{block:04x}");
        let counts: Vec<u64> = (1..=15).map(|i| (i * 7 + block) % 13 + 1).collect();
        metrics.record_block(&BlockReport {
            number: block,
            engine: "parallel",
            hot_contracts: contracts(&prefix, &counts),
            hot_slots: counts
                .iter()
                .enumerate()
                .map(|(i, c)| (prefix.clone(), format!("0x{i:x}"), *c))
                .collect(),
            ..BlockReport::default()
        });
        let e = if block % 10 == 9 {
            scrape(server.local_addr())
        } else {
            parse_exposition(&metrics.render()).unwrap()
        };
        for family in ["velarium_hot_contract_conflicts", "velarium_hot_slot_conflicts"] {
            let samples = e.samples(family);
            assert_eq!(samples.len(), HOT_TOP_K, "block {block} {family}");
            let ranks: BTreeSet<_> = samples.iter().map(|s| s.labels["rank"].clone()).collect();
            let want: BTreeSet<_> = (1..=HOT_TOP_K).map(|r| r.to_string()).collect();
            assert_eq!(ranks, want, "block {block} {family}");
            assert!(
                samples.iter().all(|s| s.labels["address"].starts_with(&prefix)),
                "block {block} {family}: an earlier block's label set is still exported"
            );
            let values: Vec<_> = samples.iter().map(|s| s.value).collect();
            assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
        }
    }
    // A block without hot entries empties both families.
    metrics.record_block(&BlockReport { number: 50, ..BlockReport::default() });
    let e = scrape(server.local_addr());
    assert!(e.samples("velarium_hot_contract_conflicts").is_empty());
    assert!(e.samples("velarium_hot_slot_conflicts").is_empty());
    assert_eq!(e.get("velarium_blocks_total", &[("engine", "parallel")]), 50.0);
    assert_eq!(e.get("velarium_blocks_total", &[("engine", "unknown")]), 1.0);
}

#[test]
fn mgas_window_covers_the_last_64_blocks() {
    let metrics = Metrics::new();
    let block = |gas_used, seconds| BlockReport {
        gas_used,
        execution_seconds: seconds * 0.5,
        state_root_seconds: seconds * 0.25,
        commit_seconds: seconds * 0.25,
        ..BlockReport::default()
    };
    for _ in 0..10 {
        metrics.record_block(&block(100_000_000, 1.0));
    }
    let e = parse_exposition(&metrics.render()).unwrap();
    assert_eq!(e.get("velarium_mgas_per_second", &[]), 100.0);
    for i in 1..=MGAS_WINDOW_BLOCKS {
        metrics.record_block(&block(1_000_000, 1.0));
        let e = parse_exposition(&metrics.render()).unwrap();
        let old = MGAS_WINDOW_BLOCKS.saturating_sub(i).min(10) as f64;
        let want = (old * 100.0 + i.min(MGAS_WINDOW_BLOCKS) as f64) / MGAS_WINDOW_BLOCKS as f64;
        let got = e.get("velarium_mgas_per_second", &[]);
        if i + 10 >= MGAS_WINDOW_BLOCKS {
            assert!((got - want).abs() < 1e-9, "after {i}: {got} != {want}");
        }
    }
    assert_eq!(
        parse_exposition(&metrics.render()).unwrap().get("velarium_mgas_per_second", &[]),
        1.0
    );
}

#[test]
fn invalid_numbers_are_not_recorded() {
    let metrics = Metrics::new();
    metrics.record_block(&BlockReport {
        number: 7,
        gas_used: 1_000,
        execution_seconds: f64::NAN,
        state_root_seconds: -1.0,
        commit_seconds: f64::INFINITY,
        critical_path_bound: Some(f64::INFINITY),
        speedup: Some(f64::NAN),
        worker_utilisation: Some(-0.5),
        ..BlockReport::default()
    });
    let e = parse_exposition(&metrics.render()).unwrap();
    assert_eq!(e.get("velarium_head_block_number", &[]), 7.0);
    for name in [
        "velarium_block_execution_seconds_count",
        "velarium_mgas_per_second",
        "velarium_critical_path_bound",
        "velarium_speedup",
        "velarium_bound_efficiency",
        "velarium_worker_utilisation",
    ] {
        assert_eq!(e.value(name, &[]), None, "{name}");
    }
}

#[test]
fn instances_are_independent() {
    let (a, b) = (Metrics::new(), Metrics::new());
    a.record_block(&block_one());
    a.record_block(&block_two());
    b.record_block(&block_three());
    let (ea, eb) = (parse_exposition(&a.render()).unwrap(), parse_exposition(&b.render()).unwrap());
    assert_eq!(ea.get("velarium_transactions_total", &[]), 30.0);
    assert_eq!(eb.get("velarium_transactions_total", &[]), 5.0);
    assert_eq!(ea.samples("velarium_hot_contract_conflicts").len(), 0);
    assert_eq!(eb.samples("velarium_hot_contract_conflicts").len(), HOT_TOP_K);
    // A clone shares the series.
    let clone = a.clone();
    clone.record_block(&block_two());
    assert_eq!(
        parse_exposition(&a.render()).unwrap().get("velarium_transactions_total", &[]),
        50.0
    );
}

#[test]
fn server_answers_errors_and_survives_garbage() {
    let metrics = Metrics::new();
    metrics.record_block(&block_one());
    let server = metrics.serve(loopback()).unwrap();
    let addr = server.local_addr();

    for path in ["/", "/metric", "/metrics/", "/favicon.ico"] {
        let response = get(addr, path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.headers["content-length"], response.body.len().to_string());
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let response = http(
            addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
                .as_bytes(),
        );
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.headers["allow"], "GET, HEAD");
    }

    // HEAD: the headers of a GET, no body.
    let head = http(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head.headers["content-length"].parse::<usize>().unwrap() > 0);
    // Query strings, HTTP/1.0 and bare line feeds are fine.
    assert_eq!(get(addr, "/metrics?name[]=x").status, 200);
    assert_eq!(http(addr, b"GET /metrics HTTP/1.0\r\n\r\n").status, 200);
    assert_eq!(http(addr, b"GET /metrics HTTP/1.1\n\n").status, 200);

    // Garbage gets a 400, an oversized head a 431.
    for garbage in [
        &b"\x00\xff\xfe garbage \x01\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/2.0\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\n\r\n",
        b"\r\n\r\n",
    ] {
        assert_eq!(http(addr, garbage).status, 400, "{garbage:?}");
    }
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.resize(64 * 1024, b'a');
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before all of it is sent; only the answer matters.
    let _ = stream.write_all(&huge);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(parse_response(&raw).status, 431);

    // Disconnects: at once, mid-request, and without reading the response.
    drop(TcpStream::connect(addr).unwrap());
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(b"GET /metr").unwrap();
    drop(partial);
    let mut rude = TcpStream::connect(addr).unwrap();
    rude.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    drop(rude);

    // A request split across writes.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    slow.write_all(b"GET /met").unwrap();
    thread::sleep(Duration::from_millis(50));
    slow.write_all(b"rics HTTP/1.1\r\nHost: x\r").unwrap();
    thread::sleep(Duration::from_millis(50));
    slow.write_all(b"\n\r\n").unwrap();
    let mut raw = Vec::new();
    slow.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_response(&raw).status, 200);

    // Still serving, with the right values.
    let e = scrape(addr);
    assert_eq!(e.get("velarium_transactions_total", &[]), 10.0);
    metrics.record_block(&block_two());
    assert_eq!(scrape(addr).get("velarium_transactions_total", &[]), 30.0);
}

#[test]
fn shutdown_and_drop_close_the_port() {
    let metrics = Metrics::new();
    let server = metrics.serve(loopback()).unwrap();
    let addr = server.local_addr();
    scrape(addr);
    // The port is taken while serving.
    assert!(metrics.serve(addr).is_err());
    server.shutdown();
    assert!(TcpStream::connect(addr).is_err(), "still listening after shutdown");

    let server = metrics.serve(loopback()).unwrap();
    let addr = server.local_addr();
    scrape(addr);
    drop(server);
    assert!(TcpStream::connect(addr).is_err(), "still listening after drop");

    // Serving on the unspecified address: shutdown wakes the thread through loopback.
    let server = metrics.serve(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).unwrap();
    let port = server.local_addr().port();
    scrape(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    server.shutdown();
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
}

#[test]
fn efficiency_is_bounded_by_the_workers_as_well_as_the_critical_path() {
    let metrics = Metrics::new();
    // Bound 600 on two workers: at most 2x was reachable, 1.5x is 75% of it.
    metrics.record_block(&BlockReport {
        number: 1,
        critical_path_bound: Some(600.0),
        speedup: Some(1.5),
        workers: 2,
        ..BlockReport::default()
    });
    let text = metrics.render();
    let e = parse_exposition(&text).unwrap();
    assert_eq!(e.get("velarium_critical_path_bound", &[]), 600.0, "{text}");
    assert_eq!(e.get("velarium_bound_efficiency", &[]), 0.75, "{text}");
    // Bound 1.2 on two workers: the chain is the limit.
    metrics.record_block(&BlockReport {
        number: 2,
        critical_path_bound: Some(1.2),
        speedup: Some(0.9),
        workers: 2,
        ..BlockReport::default()
    });
    let e = parse_exposition(&metrics.render()).unwrap();
    assert!((e.get("velarium_bound_efficiency", &[]) - 0.75).abs() < 1e-12);
}
