//! Tests of the borrowed JSON document: paths (nested, dotted, mixed), the walk, borrowed and
//! unescaped strings, arrays and scalars, and invalid documents.

use super::*;

#[test]
fn nested_dotted_and_mixed_paths() {
    let doc =
        JsonDoc::parse(r#"{"source":{"ip":"192.0.2.1","nat.ip":"x"},"a.b":{"c":1}}"#).unwrap();
    let root = doc.root();
    assert_eq!(root.get_text("source.ip").as_deref(), Some("192.0.2.1"));
    assert_eq!(root.get_text("source.nat.ip").as_deref(), Some("x"));
    assert_eq!(root.get_text("a.b.c").as_deref(), Some("1"));
    assert!(root.get("source.port").is_none());
}

#[test]
fn walk_gives_dotted_paths_for_nested_and_dotted_keys() {
    let doc = JsonDoc::parse(r#"{"a":{"b":1,"c.d":{"e":"x"}},"f.g":[1],"h":{}}"#).unwrap();
    let mut seen = Vec::new();
    doc.root()
        .walk_leaves(&mut |path, value| seen.push((path.to_owned(), value.is_array())));
    assert_eq!(
        seen,
        [
            ("a.b".to_owned(), false),
            ("a.c.d.e".to_owned(), false),
            ("f.g".to_owned(), true)
        ]
    );
}

#[test]
fn strings_borrow_unless_escaped() {
    let doc = JsonDoc::parse(r#"{"a":"plain","b":"q\"\u00e9\ud83d\ude00\/"}"#).unwrap();
    assert!(matches!(
        doc.root().get_text("a"),
        Some(Cow::Borrowed("plain"))
    ));
    assert_eq!(doc.root().get_text("b").unwrap(), "q\"é😀/");
}

#[test]
fn arrays_and_scalars() {
    let doc = JsonDoc::parse(r#" {"r":[{"x":1},{"x":2}],"t":true,"n":null,"f":-1.5e3} "#).unwrap();
    let xs: Vec<_> = doc
        .root()
        .member("r")
        .unwrap()
        .items()
        .map(|i| i.get_text("x").unwrap().into_owned())
        .collect();
    assert_eq!(xs, ["1", "2"]);
    assert_eq!(doc.root().get_text("t").as_deref(), Some("true"));
    assert_eq!(doc.root().get_text("f").as_deref(), Some("-1.5e3"));
    assert!(doc.root().get_text("n").is_none());
}

#[test]
fn invalid_documents_are_errors() {
    for text in [
        "",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1 2]",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"abc",
        "{} x",
        "-",
        "{\"a\":tru}",
    ] {
        assert!(JsonDoc::parse(text).is_err(), "{text:?} should fail");
    }
    let deep = "[".repeat(100) + &"]".repeat(100);
    assert!(JsonDoc::parse(&deep).is_err());
}

#[test]
fn the_root_key_filter_never_hides_a_member() {
    let text = r#"{"a":1,"source":{"ip":"x"},"event_type":"flow","k\u0065y":2,"":3,"zz":{"a":4}}"#;
    let doc = JsonDoc::parse(text).unwrap();
    let root = doc.root();
    for key in ["a", "source", "event_type", "key", "", "zz"] {
        assert!(root.member(key).is_some(), "{key}");
    }
    for key in ["b", "sourcE", "event", "ip", "zzz"] {
        assert!(root.member(key).is_none(), "{key}");
    }
    // Nested objects are not filtered.
    assert!(root.member("zz").unwrap().member("a").is_some());
    assert!(root.get("source.ip").is_some());
}
