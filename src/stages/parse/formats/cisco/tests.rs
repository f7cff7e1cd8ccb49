//! Tests of the Cisco header forms and endpoint notation.

use super::*;

#[test]
fn header_with_a_multibyte_character_in_the_id_is_not_a_header() {
    assert!(header_at("ASA-6-30201ʽ 4402.5Te a00").is_none());
}

#[test]
fn header_forms() {
    let h = header("%FTD-session-5-106100: access-list x").unwrap();
    assert_eq!(
        (h.product, h.id, h.message),
        (Some("FTD"), 106100, "access-list x")
    );
    let h = header("asa01 %ASA-6-302013: Built").unwrap();
    assert_eq!((h.product, h.id), (Some("ASA"), 302013));
    for bad in [
        "%ASA-8-302013: x",
        "%ASA-6-30201: x",
        "%ASA-",
        "%XYZ-6-302013: x",
        "%é",
    ] {
        assert_eq!(header(bad), None, "{bad}");
    }
}

#[test]
fn endpoint_notation() {
    let e = endpoint("outside:203.0.113.7/51544 (198.51.100.7/40212) to x");
    assert_eq!(e.addr, Some("203.0.113.7/51544"));
    assert_eq!(e.nat(), Some("198.51.100.7/40212"));
    let e = endpoint("inside:192.0.2.10/80 (192.0.2.10/80)(LOCAL\\alice)");
    assert_eq!((e.addr, e.nat()), (Some("192.0.2.10/80"), None));
    let e = endpoint("outside:2001:db8::7/51544 to");
    assert_eq!(e.addr, Some("2001:db8::7/51544"));
    let e = endpoint("NP Identity Ifc:192.0.2.1/53 dst x");
    assert_eq!(e.addr, Some("192.0.2.1/53"));
    assert_eq!(endpoint("(0.0.0.0) to").addr, None);
    assert_eq!(endpoint("dmz:OCSP_Server/5678").addr, None);
    assert_eq!(endpoint("").addr, None);
    assert_eq!(
        slash_endpoint("outside/2001:db8::7(5353) hit"),
        Some("2001:db8::7")
    );
}

#[test]
fn message_text_without_its_prefix_is_read_by_its_wording() {
    let h =
        header("Deny tcp src outside:203.0.113.7/1 dst inside:192.0.2.1/22 by access-group \"a\"")
            .unwrap();
    assert_eq!((h.product, h.id), (None, 106023));
    let h = header("Teardown UDP connection 7 for outside:203.0.113.7/53 to inside:192.0.2.1/5353")
        .unwrap();
    assert_eq!(h.id, 302016);
    assert_eq!(header("ASA-6-302013: Built").map(|h| h.id), Some(302013));
    assert_eq!(
        header("asa01 ASA-6-302013: Built").map(|h| h.id),
        Some(302013)
    );
    // Prose with the same first words, and a prefix glued to another word, are not Cisco.
    for other in [
        "Deny all requests from 203.0.113.7 until midnight",
        "Built the release from 192.0.2.1 to 192.0.2.2",
        "Group meeting at 10 with User admin about IP planning",
        "access-list updated by admin",
        "NOTASA-6-302013: Built",
    ] {
        assert_eq!(header(other), None, "{other}");
    }
}
