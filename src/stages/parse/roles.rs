//! Role inference for lines no format claims: what part an address played, read from the words
//! and key names the line itself puts next to it.
//!
//! * In: the line's text and the byte spans of the addresses the scanner found in it, in order.
//! * Out: one [`Inferred`] per address: a [`Role`] and a [`Confidence`]. Where the words are
//!   absent the role stays [`Role::Unknown`]: nothing is guessed from position or count.
//! * Key and label names (the word before the address, or the two words before it when the
//!   nearer one is only `IP`/`address`/`host`, as in `Peer IP=A`, `source IP A`, `user ip A`;
//!   an interface name glued by `:` is skipped, as in `src outside:A/p`), matched
//!   case-insensitively with `_`, `-`, `.` and spaces ignored, first rule wins:
//!   - forwarded: `x-forwarded-for`, `xff*`, `*forwarded*`;
//!   - nat: `nat*`, `*nat`, `*xlate*`, `*translated*`, `*mapped*`, `tran*`, `egress*`;
//!   - client (the source side of a proxied request; records read it as the source):
//!     `client*`, `c-ip`, `cip`;
//!   - source: `src*`, `source*`, `peer*`, `remote*`, `sender*`, `userip`, `saddr`,
//!     `conn*src*`;
//!   - destination: `dst*`, `dest*` (so `destination*`), `server*`, `target*`, `lbserver*`,
//!     `local*`, `daddr`, `conn*dst*`, `conn*dest*`;
//!   - not read: `origin` (Check Point's reporting device), `response` (a DNS answer), a lone
//!     `user` or `ip`. A user name glued by `@` (`from alice@A`) is skipped.
//! * Phrases: `from A` (source), `to A` (destination; `translated to`, `mapped to`, `nat to`
//!   give nat), `between A and B` (source, destination), `A -> B` / `A => B` (source,
//!   destination; ports after either side are allowed), `for A` (source, weak),
//!   `forwarded for A` (forwarded).
//! * Confidence: key names, labels and the phrases above are [`Confidence::Strong`]; `for A` is
//!   [`Confidence::Weak`] (`for` names the subject of many messages, not always the initiator),
//!   and a weak source is dropped back to unknown when the line names a source strongly.

use crate::model::Role;

/// How sure the inference is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Confidence {
    /// No word said anything: the role is unknown.
    None,
    /// A word that usually, not always, names the role (`for A`).
    Weak,
    /// A key name, a label or a directional phrase.
    Strong,
}

/// The role inferred for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inferred {
    /// The role (`Unknown` when nothing said).
    pub role: Role,
    /// How sure.
    pub confidence: Confidence,
}

impl Inferred {
    const UNKNOWN: Inferred = Inferred {
        role: Role::Unknown,
        confidence: Confidence::None,
    };

    fn strong(role: Role) -> Self {
        Inferred {
            role,
            confidence: Confidence::Strong,
        }
    }
}

/// The role a key or label name gives the address it holds, if it names one.
pub(crate) fn key_role(key: &str) -> Option<Role> {
    let mut buf = [0u8; 32];
    let mut len = 0;
    for b in key.bytes() {
        if matches!(b, b'_' | b'-' | b'.' | b' ') {
            continue;
        }
        if len == buf.len() {
            return None;
        }
        buf[len] = b.to_ascii_lowercase();
        len += 1;
    }
    let k = &buf[..len];
    let has = |needle: &[u8]| k.windows(needle.len()).any(|w| w == needle);
    let starts = |prefix: &[u8]| k.starts_with(prefix);
    if k.is_empty() {
        return None;
    }
    if starts(b"xff") || has(b"forwarded") {
        return Some(Role::Forwarded);
    }
    if starts(b"nat")
        || k.ends_with(b"nat")
        || has(b"xlate")
        || has(b"translated")
        || has(b"mapped")
        || starts(b"tran")
        || starts(b"egress")
    {
        return Some(Role::Nat);
    }
    if starts(b"client") || k == b"cip" {
        return Some(Role::Client);
    }
    let conn = starts(b"conn");
    if starts(b"src")
        || starts(b"source")
        || starts(b"peer")
        || starts(b"remote")
        || starts(b"sender")
        || starts(b"userip")
        || k == b"saddr"
        || (conn && has(b"src"))
    {
        return Some(Role::Source);
    }
    if starts(b"dst")
        || starts(b"dest")
        || starts(b"server")
        || starts(b"target")
        || starts(b"lbserver")
        || starts(b"local")
        || k == b"daddr"
        || (conn && (has(b"dst") || has(b"dest")))
    {
        return Some(Role::Destination);
    }
    None
}

/// Labels that say "an address" without saying whose: the word before them decides.
fn is_generic_label(word: &str) -> bool {
    [
        "ip",
        "ipaddr",
        "ipv4",
        "ipv6",
        "addr",
        "address",
        "host",
        "ip-address",
        "ip_address",
    ]
    .iter()
    .any(|g| g.eq_ignore_ascii_case(word))
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Separators between a label and its address (`key=A`, `Key: A`, `key="A"`, `(A)`, `<A>`).
fn is_separator(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'=' | b':' | b'"' | b'\'' | b'(' | b'[' | b'<' | b'{' | b','
    )
}

/// Up to three words before `end`, nearest first, and whether the nearest was glued to `end`
/// by exactly one `:` (an interface name: `outside:A`).
fn words_before(text: &str, end: usize) -> ([&str; 3], bool) {
    let bytes = text.as_bytes();
    let mut words = [""; 3];
    let mut i = end;
    let mut glued_colon = false;
    for (n, slot) in words.iter_mut().enumerate() {
        let sep_end = i;
        while i > 0 && is_separator(bytes[i - 1]) {
            i -= 1;
        }
        if n == 0 {
            glued_colon = sep_end - i == 1 && bytes[i] == b':';
        }
        let word_end = i;
        while i > 0 && is_word_byte(bytes[i - 1]) {
            i -= 1;
        }
        if i == word_end {
            break;
        }
        // A word stops at a non-ASCII character: `i` is then on a character boundary.
        *slot = text[i..word_end].trim_matches('.');
    }
    (words, glued_colon)
}

/// The role the words right before an address give it.
fn from_words(text: &str, start: usize) -> Inferred {
    // `from alice@A`: the user name glued by `@` is not a label.
    let bytes = text.as_bytes();
    let mut start = start;
    if start > 0 && bytes[start - 1] == b'@' {
        start -= 1;
        while start > 0 && is_word_byte(bytes[start - 1]) {
            start -= 1;
        }
    }
    let ([w1, w2, w3], glued_colon) = words_before(text, start);
    if w1.is_empty() {
        return Inferred::UNKNOWN;
    }
    let lower = w1.to_ascii_lowercase();
    match lower.as_str() {
        "from" => return Inferred::strong(Role::Source),
        "to" => {
            let nat = ["translated", "mapped", "nat", "natted", "xlate", "xlated"]
                .iter()
                .any(|w| w.eq_ignore_ascii_case(w2));
            return Inferred::strong(if nat { Role::Nat } else { Role::Destination });
        }
        "between" => return Inferred::strong(Role::Source),
        "for" if w2.eq_ignore_ascii_case("forwarded") => return Inferred::strong(Role::Forwarded),
        "for" => {
            return Inferred {
                role: Role::Source,
                confidence: Confidence::Weak,
            }
        }
        _ => {}
    }
    if let Some(role) = key_role(w1) {
        return Inferred::strong(role);
    }
    if is_generic_label(w1) && !w2.is_empty() {
        let mut joined = String::with_capacity(w2.len() + w1.len());
        joined.push_str(w2);
        joined.push_str(w1);
        if let Some(role) = key_role(&joined).or_else(|| key_role(w2)) {
            return Inferred::strong(role);
        }
    }
    if glued_colon && !w2.is_empty() {
        // `src outside:A`: `outside` is the interface, `src` the label.
        return match w2.to_ascii_lowercase().as_str() {
            "from" => Inferred::strong(Role::Source),
            "to" => Inferred::strong(Role::Destination),
            _ => key_role(w2).map_or(Inferred::UNKNOWN, Inferred::strong),
        };
    }
    let _ = w3;
    Inferred::UNKNOWN
}

/// Whether the text between two addresses is an arrow (`A:p -> B`, `A/p => B`, `A > B`).
fn is_arrow_between(between: &str) -> bool {
    let rest = between.trim_start_matches([':', '/', '.']);
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.trim_start_matches(')').trim();
    matches!(rest, "->" | "-->" | "=>" | ">")
}

/// Roles of the addresses at `spans` (byte ranges of `text`, in order), one per span.
pub(crate) fn infer(text: &str, spans: &[(usize, usize)]) -> Vec<Inferred> {
    let mut out: Vec<Inferred> = spans
        .iter()
        .map(|&(start, _)| from_words(text, start))
        .collect();
    for i in 1..spans.len() {
        let (prev_start, prev_end) = spans[i - 1];
        let (start, _) = spans[i];
        let between = &text[prev_end..start];
        if is_arrow_between(between) {
            if out[i - 1].confidence < Confidence::Strong {
                out[i - 1] = Inferred::strong(Role::Source);
            }
            if out[i].confidence < Confidence::Strong {
                out[i] = Inferred::strong(Role::Destination);
            }
            continue;
        }
        // `between A and B`
        let ([w1, ..], _) = words_before(text, start);
        let ([p1, ..], _) = words_before(text, prev_start);
        if w1.eq_ignore_ascii_case("and") && p1.eq_ignore_ascii_case("between") {
            out[i] = Inferred::strong(Role::Destination);
        }
    }
    // A weak source yields to a strong one: `for A … from B` names B the initiator.
    let strong_source = out.iter().any(|r| {
        r.confidence == Confidence::Strong && matches!(r.role, Role::Source | Role::Client)
    });
    if strong_source {
        for r in &mut out {
            if r.confidence == Confidence::Weak {
                *r = Inferred::UNKNOWN;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Roles of the addresses named in `addresses`, found by position in `text`.
    fn roles(text: &str, addresses: &[&str]) -> Vec<Role> {
        let mut spans = Vec::new();
        let mut from = 0;
        for a in addresses {
            let start = from + text[from..].find(a).expect("address in text");
            spans.push((start, start + a.len()));
            from = start + a.len();
        }
        infer(text, &spans).into_iter().map(|r| r.role).collect()
    }

    use Role::{Client, Destination as Dst, Forwarded as Fwd, Nat, Source as Src, Unknown};

    #[test]
    fn phrases_name_source_and_destination() {
        let cases: [(&str, &[&str], &[Role]); 11] = [
            (
                "conn from 198.51.100.7 to 10.1.1.2 port 22",
                &["198.51.100.7", "10.1.1.2"],
                &[Src, Dst],
            ),
            (
                "198.51.100.7:59407 -> 203.0.113.9:443 tcp",
                &["198.51.100.7", "203.0.113.9"],
                &[Src, Dst],
            ),
            (
                "2001:db8::7 => 2001:db8::9",
                &["2001:db8::7", "2001:db8::9"],
                &[Src, Dst],
            ),
            (
                "198.51.100.7/1 > 203.0.113.9/2",
                &["198.51.100.7", "203.0.113.9"],
                &[Src, Dst],
            ),
            (
                "session between 198.51.100.7 and 203.0.113.9 closed",
                &["198.51.100.7", "203.0.113.9"],
                &[Src, Dst],
            ),
            (
                "connection from alice@198.51.100.8:2121",
                &["198.51.100.8"],
                &[Src],
            ),
            ("login from 198.51.100.7 failed", &["198.51.100.7"], &[Src]),
            ("source IP 198.51.100.7 blocked", &["198.51.100.7"], &[Src]),
            ("auth failed for 198.51.100.7", &["198.51.100.7"], &[Src]),
            (
                "address 192.0.2.1 translated to 203.0.113.5",
                &["192.0.2.1", "203.0.113.5"],
                &[Unknown, Nat],
            ),
            (
                "request forwarded for 203.0.113.44",
                &["203.0.113.44"],
                &[Fwd],
            ),
        ];
        for (text, addresses, want) in cases {
            assert_eq!(roles(text, addresses), want, "{text}");
        }
    }

    #[test]
    fn labels_and_keys_name_roles() {
        let cases: [(&str, &[&str], &[Role]); 9] = [
            (
                "Deny tcp src outside:198.51.100.7/50240 dst inside:10.1.1.2/23",
                &["198.51.100.7", "10.1.1.2"],
                &[Src, Dst],
            ),
            (
                "Local:198.51.100.7:500 Remote:203.0.113.9:500",
                &["198.51.100.7", "203.0.113.9"],
                &[Dst, Src],
            ),
            ("Peer IP=198.51.100.7 tunnel up", &["198.51.100.7"], &[Src]),
            ("user ip 198.51.100.7 logged in", &["198.51.100.7"], &[Src]),
            (
                "connsrcip=198.51.100.7 conndestip=203.0.113.9",
                &["198.51.100.7", "203.0.113.9"],
                &[Src, Dst],
            ),
            (
                "client_ip=198.51.100.7 server_ip=203.0.113.9",
                &["198.51.100.7", "203.0.113.9"],
                &[Client, Dst],
            ),
            ("X-Forwarded-For: 203.0.113.44", &["203.0.113.44"], &[Fwd]),
            (
                "lb_server=\"203.0.113.9\" tran_src=\"198.51.100.1\"",
                &["203.0.113.9", "198.51.100.1"],
                &[Dst, Nat],
            ),
            (
                "sender <198.51.100.7> target (203.0.113.9)",
                &["198.51.100.7", "203.0.113.9"],
                &[Src, Dst],
            ),
        ];
        for (text, addresses, want) in cases {
            assert_eq!(roles(text, addresses), want, "{text}");
        }
    }

    #[test]
    fn no_words_no_guess() {
        // Position and count say nothing: two bare addresses stay unknown.
        let cases: [(&str, &[&str]); 6] = [
            ("query: 192.0.2.10 example.com. A IN", &["192.0.2.10"]),
            // A role word two words back, not glued by `:`, says nothing about this address.
            ("server restarted 192.0.2.1 ok", &["192.0.2.1"]),
            (
                "198.51.100.7 203.0.113.9 tcp 443",
                &["198.51.100.7", "203.0.113.9"],
            ),
            ("[admin@198.51.100.7_29010] ok", &["198.51.100.7"]),
            ("inside:192.0.2.1 lease renewed", &["192.0.2.1"]),
            ("user=alice ip=192.0.2.1", &["192.0.2.1"]),
        ];
        for (text, addresses) in cases {
            let got = roles(text, addresses);
            assert!(got.iter().all(|r| *r == Unknown), "{text}: {got:?}");
        }
    }

    #[test]
    fn a_weak_source_yields_to_a_strong_one() {
        let text = "lease for 192.0.2.5 renewed from 198.51.100.7";
        assert_eq!(roles(text, &["192.0.2.5", "198.51.100.7"]), [Unknown, Src]);
        let spans = [(10, 19)];
        assert_eq!(infer(text, &spans)[0].confidence, Confidence::Weak);
    }

    #[test]
    fn key_names() {
        for (key, want) in [
            ("SRC_IP", Some(Src)),
            ("sourceAddress", Some(Src)),
            ("remote-addr", Some(Src)),
            ("dest", Some(Dst)),
            ("destination.ip", Some(Dst)),
            ("local_address", Some(Dst)),
            ("nat_src_ip", Some(Nat)),
            ("xlatedst", Some(Nat)),
            ("egress_ip", Some(Nat)),
            ("x-forwarded-for", Some(Fwd)),
            ("c-ip", Some(Client)),
            ("user", None),
            ("origin", None),
            ("response", None),
            ("ip", None),
            ("a_key_name_that_is_far_too_long_to_read", None),
        ] {
            assert_eq!(key_role(key), want, "{key}");
        }
    }
}
