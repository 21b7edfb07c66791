//! The `collector` mode against vectors printed by `testdata/collector_ring.go`, a standard-library Go
//! re-implementation of the collector contrib v0.115.0 `loadbalancing` ring (see that file for the
//! format and how to regenerate it).

use tailgate_routing::{Member, Mode, RoutingTable};

/// One endpoint set and what the Go ring says about it.
#[derive(Default)]
struct Case {
    name: String,
    endpoints: Vec<String>,
    ring_points: usize,
    /// (first position, endpoint) for each run of positions with the same owner.
    runs: Vec<(u32, String)>,
    traces: Vec<([u8; 16], String)>,
    services: Vec<(String, String)>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("../testdata/collector_ring_vectors.txt");
    let mut cases = Vec::new();
    let mut case = Case::default();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let kind = fields.next().expect("record kind");
        let rest: Vec<&str> = fields.collect();
        match (kind, rest.as_slice()) {
            ("set", [name, endpoints @ ..]) => {
                case.name = (*name).to_owned();
                case.endpoints = endpoints.iter().map(|e| (*e).to_owned()).collect();
            }
            ("ring", [n]) => case.ring_points = n.parse().expect("ring size"),
            ("run", [pos, ep]) => case
                .runs
                .push((pos.parse().expect("pos"), (*ep).to_owned())),
            ("trace", [hex_id, ep]) => {
                let bytes = hex::decode(hex_id).expect("hex trace id");
                let id: [u8; 16] = bytes.try_into().expect("16 bytes");
                case.traces.push((id, (*ep).to_owned()));
            }
            ("service", [svc, ep]) => case.services.push(((*svc).to_owned(), (*ep).to_owned())),
            ("end", []) => cases.push(std::mem::take(&mut case)),
            _ => panic!("bad vector line {line:?}"),
        }
    }
    assert!(cases.len() >= 5, "vectors missing");
    cases
}

fn table(case: &Case) -> RoutingTable {
    RoutingTable::build(
        Mode::Collector,
        case.endpoints.iter().map(|e| Member::new(e.as_str())),
    )
    .expect("valid set")
}

#[test]
fn ring_has_the_same_points() {
    for case in cases() {
        assert_eq!(
            table(&case).ring_points(),
            Some(case.ring_points),
            "{}",
            case.name
        );
    }
}

#[test]
fn trace_ids_go_where_the_collector_sends_them() {
    for case in cases() {
        let t = table(&case);
        assert_eq!(case.traces.len(), 400);
        for (id, expected) in &case.traces {
            let got = t.member_for_trace(id).map(Member::endpoint);
            assert_eq!(
                got,
                Some(expected.as_str()),
                "{}: {}",
                case.name,
                hex::encode(id)
            );
        }
    }
}

#[test]
fn service_names_go_where_the_collector_sends_them() {
    for case in cases() {
        let t = table(&case);
        for (svc, expected) in &case.services {
            let got = t
                .route_service(svc.as_bytes())
                .map(|i| t.members()[i].endpoint());
            assert_eq!(got, Some(expected.as_str()), "{}: {svc}", case.name);
        }
    }
}

/// Every one of the 36,000 positions, including those exactly on a point and those past the last
/// point (which wrap), has the owner the collector's recursive search gives.
#[test]
fn every_ring_position_matches() {
    let forger = Forger::new();
    for case in cases() {
        let t = table(&case);
        let mut runs = case.runs.iter().peekable();
        let mut owner = "";
        for pos in 0..tailgate_routing::collector::RING_POSITIONS {
            if let Some((_, ep)) = runs.next_if(|(start, _)| *start == pos) {
                owner = ep;
            }
            // A key whose crc32 is exactly `pos`: route through the position directly.
            let got = position_owner(&t, &forger, pos);
            assert_eq!(got, owner, "{}: position {pos}", case.name);
        }
    }
}

/// Finds the owner of a ring position through the public API: a key whose crc32 lands exactly on
/// `pos`, routed as a service name (the collector hashes service names and trace IDs alike). Appending
/// 4 chosen bytes to a prefix sets the crc32 to any value; `Forger::forge` computes them.
fn position_owner<'t>(t: &'t RoutingTable, forger: &Forger, pos: u32) -> &'t str {
    let key = forger.forge(b"k", pos);
    assert_eq!(crc32fast::hash(&key) % 36_000, pos);
    let i = t.route_service(&key).expect("non-empty");
    t.members()[i].endpoint()
}

/// The CRC-32 (IEEE, reflected) byte table and its inverse by top byte.
struct Forger {
    table: [u32; 256],
    by_top_byte: [u8; 256],
}

impl Forger {
    fn new() -> Self {
        const POLY: u32 = 0xedb8_8320;
        let table: [u32; 256] = std::array::from_fn(|n| {
            (0..8).fold(
                n as u32,
                |c, _| if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 },
            )
        });
        let mut by_top_byte = [0u8; 256];
        for (i, v) in table.iter().enumerate() {
            by_top_byte[(v >> 24) as usize] = i as u8;
        }
        Self { table, by_top_byte }
    }

    /// Returns `prefix ++ 4 bytes` whose crc32 IEEE is `target` (classic CRC forging: run the
    /// register backwards from the target to find the table indices of the 4 appended bytes).
    fn forge(&self, prefix: &[u8], target: u32) -> Vec<u8> {
        let mut reg = !target;
        let mut idx = [0u8; 4];
        for k in (0..4).rev() {
            let i = self.by_top_byte[(reg >> 24) as usize];
            idx[k] = i;
            reg = (reg ^ self.table[usize::from(i)]) << 8;
        }
        // The register after the 4 bytes depends only on the table indices chosen, not on the
        // register before them; walk forward from the prefix's register to find the bytes that pick
        // those indices.
        let mut cur = !crc32fast::hash(prefix);
        let mut out = prefix.to_vec();
        for &i in &idx {
            out.push((cur as u8) ^ i);
            cur = (cur >> 8) ^ self.table[usize::from(i)];
        }
        out
    }
}
