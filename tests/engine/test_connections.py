"""AddConnection, FindConnection, UpdateConnection, DeleteConnection."""

from __future__ import annotations

import pytest

from .helpers import UID, body, fail, jpeg, ok, one, snapshot

PEOPLE = [
    {"AddEntity": {"_ref": i + 1, "class": "P", "properties": {"name": n}}}
    for i, n in enumerate(["ann", "bob", "cid"])
]


@pytest.fixture
def net(db):
    ok(
        db,
        [
            *PEOPLE,
            {
                "AddConnection": {
                    "class": "knows",
                    "src": 1,
                    "dst": 2,
                    "properties": {"since": 2001},
                }
            },
            {
                "AddConnection": {
                    "class": "knows",
                    "src": 2,
                    "dst": 3,
                    "properties": {"since": 2010},
                }
            },
            {"AddConnection": {"class": "likes", "src": 1, "dst": 3}},
        ],
    )
    return db


def conns(db, **params):
    return one(db, {"FindConnection": params})


def test_add_connection_answers_status_0(db):
    r, _ = ok(db, [*PEOPLE[:2], {"AddConnection": {"class": "c", "src": 1, "dst": 2}}])
    assert body(r, 2) == {"status": 0}


def test_find_connection_lists_properties_and_system_keys(net):
    r = conns(
        net, with_class="knows", results={"list": ["since", "_uniqueid", "_src", "_dst", "missing"]}
    )
    assert r["returned"] == 2
    assert [c["since"] for c in r["connections"]] == [2001, 2010]
    assert all(UID.match(c["_uniqueid"]) for c in r["connections"])
    assert all(c["missing"] is None for c in r["connections"])
    people = one(
        net, {"FindEntity": {"with_class": "P", "uniqueids": True, "results": {"list": ["name"]}}}
    )["entities"]
    uid = {p["name"]: p["_uniqueid"] for p in people}
    assert [(c["_src"], c["_dst"]) for c in r["connections"]] == [
        (uid["ann"], uid["bob"]),
        (uid["bob"], uid["cid"]),
    ]


def test_find_connection_pages_by_uniqueid_order(net):
    """`_uniqueid` > / < on connections: keyset paging in insertion order, within connections."""
    all_ = conns(net, results={"list": ["_uniqueid"]})["connections"]
    uids = [c["_uniqueid"] for c in all_]
    assert len(uids) == 3
    after = conns(net, constraints={"_uniqueid": [">", uids[0]]}, results={"list": ["_uniqueid"]})
    assert [c["_uniqueid"] for c in after["connections"]] == uids[1:]
    before = conns(net, constraints={"_uniqueid": ["<=", uids[1]]}, results={"list": ["_uniqueid"]})
    assert [c["_uniqueid"] for c in before["connections"]] == uids[:2]
    # An entity's uniqueid orders no connection.
    entity = one(net, {"FindEntity": {"with_class": "P", "uniqueids": True}})["entities"][0]
    none = conns(
        net, constraints={"_uniqueid": [">", entity["_uniqueid"]]}, results={"count": True}
    )
    assert none["count"] == 0


def test_find_connection_names_each_end_by_its_own_family(db):
    """`_src`/`_dst` are the ends' own uniqueids: an image is 2.0.N, a box 4.0.N, an entity
    1.0.N (this was reported as 1.0.N for every end)."""
    r, _ = ok(
        db,
        [
            {"AddImage": {"_ref": 1, "properties": {"name": "pic"}}},
            {"AddEntity": {"_ref": 2, "class": "Camera"}},
            {"AddConnection": {"class": "taken_by", "src": 1, "dst": 2}},
            {
                "AddBoundingBox": {
                    "_ref": 3,
                    "image_ref": 1,
                    "rectangle": {"x": 0, "y": 0, "width": 2, "height": 2},
                }
            },
            {"AddConnection": {"class": "seen_in", "src": 3, "dst": 2}},
        ],
        [jpeg()],
    )
    image = one(db, {"FindImage": {"uniqueids": True, "blobs": False}})["entities"][0]["_uniqueid"]
    camera = one(db, {"FindEntity": {"with_class": "Camera", "uniqueids": True}})["entities"][0][
        "_uniqueid"
    ]
    box = one(db, {"FindBoundingBox": {"uniqueids": True}})["entities"][0]["_uniqueid"]
    assert image.startswith("2.0.") and camera.startswith("1.0.") and box.startswith("4.0.")
    found = conns(db, results={"list": ["_src", "_dst", "_class"], "sort": "_uniqueid"})
    ends = {c["_class"]: (c["_src"], c["_dst"]) for c in found["connections"]}
    assert ends["taken_by"] == (image, camera)
    assert ends["seen_in"] == (box, camera)


def test_find_connection_counts_and_filters(net):
    assert conns(net, results={"count": True})["count"] == 3
    assert conns(net, with_class="likes", results={"count": True})["count"] == 1
    assert conns(net, constraints={"since": [">", 2005]}, results={"count": True})["count"] == 1
    assert conns(net, constraints={"since": ["==", None]}, results={"count": True})["count"] == 1
    assert conns(net, with_class="nothing", results={"list": ["since"]}) == {
        "status": 0,
        "returned": 0,
        "connections": [],
    }
    r = conns(
        net,
        results={"all_properties": True, "sort": {"key": "since", "order": "descending"}},
        limit=1,
    )
    assert r["connections"][0]["since"] == 2010 and "_uniqueid" in r["connections"][0]


def test_find_connection_by_src_and_dst(net):
    r, _ = ok(
        net,
        [
            {"FindEntity": {"_ref": 1, "with_class": "P", "constraints": {"name": ["==", "ann"]}}},
            {"FindEntity": {"_ref": 2, "with_class": "P", "constraints": {"name": ["==", "cid"]}}},
            {"FindConnection": {"src": 1, "results": {"count": True}}},
            {"FindConnection": {"dst": 2, "results": {"count": True}}},
            {"FindConnection": {"src": 1, "dst": 2, "uniqueids": True}},
        ],
    )
    assert body(r, 2)["count"] == 2 and body(r, 3)["count"] == 2
    assert body(r, 4)["returned"] == 1


def test_add_connection_connects_every_pair(db):
    ok(
        db,
        [{"AddEntity": {"class": "A", "properties": {"i": i}}} for i in range(2)]
        + [{"AddEntity": {"class": "B", "properties": {"i": i}}} for i in range(3)],
    )
    ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "A"}},
            {"FindEntity": {"_ref": 2, "with_class": "B"}},
            {"AddConnection": {"class": "ab", "src": 1, "dst": 2}},
        ],
    )
    assert conns(db, results={"count": True})["count"] == 6


def test_add_connection_with_an_empty_end_is_an_error(db, folder):
    before = snapshot(folder)
    r = fail(
        db,
        [
            PEOPLE[0],
            {"FindEntity": {"_ref": 2, "with_class": "Nobody"}},
            {"AddConnection": {"class": "c", "src": 1, "dst": 2}},
        ],
    )
    assert "dst" in r["info"] and "AddConnection" in r["info"]
    assert snapshot(folder) == before


def test_add_connection_if_not_found(net):
    r, _ = ok(
        net,
        [
            {"FindEntity": {"_ref": 1, "with_class": "P", "constraints": {"name": ["==", "ann"]}}},
            {"FindEntity": {"_ref": 2, "with_class": "P", "constraints": {"name": ["==", "bob"]}}},
            {"AddConnection": {"class": "knows", "src": 1, "dst": 2, "if_not_found": {}}},
            {
                "AddConnection": {
                    "class": "knows",
                    "src": 1,
                    "dst": 2,
                    "if_not_found": {"since": ["==", 1999]},
                    "properties": {"since": 1999},
                }
            },
            {"AddConnection": {"class": "likes", "src": 1, "dst": 2, "if_not_found": {}}},
            {"AddConnection": {"class": "knows", "src": 2, "dst": 1, "if_not_found": {}}},
        ],
    )
    assert [body(r, i)["status"] for i in range(2, 6)] == [2, 0, 0, 0]
    assert body(r, 2)["info"] == "Object Exists!"
    assert conns(net, results={"count": True})["count"] == 6


def test_connection_refs(net):
    r, _ = ok(
        net,
        [
            {
                "FindConnection": {
                    "_ref": 1,
                    "with_class": "knows",
                    "constraints": {"since": ["<", 2005]},
                }
            },
            {"UpdateConnection": {"ref": 1, "properties": {"close": True}}},
            {
                "FindConnection": {
                    "constraints": {"close": ["==", True]},
                    "results": {"list": ["since"]},
                }
            },
        ],
    )
    assert body(r, 1)["count"] == 1 and body(r, 2)["connections"] == [{"since": 2001}]
    r, _ = ok(
        net,
        [
            {"FindEntity": {"_ref": 1, "with_class": "P", "constraints": {"name": ["==", "ann"]}}},
            {"FindEntity": {"_ref": 2, "with_class": "P", "constraints": {"name": ["==", "bob"]}}},
            {"AddConnection": {"_ref": 3, "class": "met", "src": 1, "dst": 2}},
            {"UpdateConnection": {"ref": 3, "properties": {"where": "Oslo"}}},
        ],
    )
    assert body(r, 3)["count"] == 1


def test_update_connection(net):
    r = one(
        net,
        {
            "UpdateConnection": {
                "with_class": "knows",
                "constraints": {"since": [">", 2005]},
                "properties": {"since": 2011, "tag": "x"},
            }
        },
    )
    assert r == {"status": 0, "count": 1}
    r = one(net, {"UpdateConnection": {"with_class": "knows", "remove_props": ["since"]}})
    assert r["count"] == 2
    assert conns(net, with_class="knows", results={"list": ["since", "tag"]})["connections"] == [
        {"since": None, "tag": None},
        {"since": None, "tag": "x"},
    ]
    assert (
        one(net, {"UpdateConnection": {"with_class": "none", "properties": {"a": 1}}})["count"] == 0
    )


def test_delete_connection(net):
    assert one(
        net, {"DeleteConnection": {"with_class": "knows", "constraints": {"since": ["==", 2001]}}}
    ) == {"status": 0, "count": 1}
    r, _ = ok(
        net,
        [
            {"FindConnection": {"_ref": 1, "with_class": "likes"}},
            {"DeleteConnection": {"ref": 1}},
        ],
    )
    assert body(r, 1)["count"] == 1
    assert conns(net, results={"count": True})["count"] == 1
    # Deleting connections leaves the entities alone.
    assert one(net, {"FindEntity": {"results": {"count": True}}})["count"] == 3


def test_entity_refs_cannot_address_connections(net):
    r = fail(
        net, [{"FindEntity": {"_ref": 1, "with_class": "P"}}, {"DeleteConnection": {"ref": 1}}]
    )
    assert "connection" in r["info"]


@pytest.mark.parametrize(
    "command, fragment",
    [
        ({"AddConnection": {"src": 1, "dst": 2}}, "class"),
        ({"AddConnection": {"class": "", "src": 1, "dst": 2}}, "class"),
        ({"AddConnection": {"class": "c", "dst": 2}}, "src"),
        ({"AddConnection": {"class": "c", "src": 1}}, "dst"),
        ({"AddConnection": {"class": "c", "src": "1", "dst": 2}}, "src"),
        ({"AddConnection": {"class": "c", "src": 1, "dst": 2, "properties": {"_x": 1}}}, "_x"),
        ({"AddConnection": {"class": "c", "src": 1, "dst": 2, "direction": "in"}}, "direction"),
        ({"FindConnection": {"with_class": 5}}, "with_class"),
        ({"UpdateConnection": {"remove_props": "since"}}, "remove_props"),
        ({"DeleteConnection": {"constraints": {"since": [">"]}}}, "since"),
    ],
)
def test_bad_connection_commands(db, folder, command, fragment):
    before = snapshot(folder)
    r = fail(db, [*PEOPLE[:2], command])
    assert fragment in r["info"] and next(iter(command)) in r["info"]
    assert snapshot(folder) == before
