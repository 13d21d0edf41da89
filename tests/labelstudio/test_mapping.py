"""Pure mapping and query-building tests (no Label Studio, no server): results <-> regions, config reading."""

from __future__ import annotations

import json

from lensdb.labelstudio import queries as Q
from lensdb.labelstudio.labelconfig import parse_label_config
from lensdb.labelstudio.mapping import box_result, parse_results, polygon_results

CONFIG = """<View>
  <Image name="img" value="$photo"/>
  <RectangleLabels name="box" toName="img"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
  <Polygon name="outline" toName="img"/>
  <Labels name="outline_labels" toName="img"><Label value="Road"/></Labels>
  <Choices name="weather" toName="img"><Choice value="Sunny"/></Choices>
  <TextArea name="note" toName="img" perRegion="true"/>
</View>"""


def test_label_config_controls_labels_and_data_key():
    cfg = parse_label_config(CONFIG)
    assert cfg.image_data_key() == "photo"
    assert cfg.box_control().name == "box" and cfg.box_control().labels == ["Cat", "Dog"]
    poly = cfg.polygon_control()
    assert poly.name == "outline" and poly.type == "polygon" and poly.labels == ["Road"]
    assert cfg.names_of("choices", "textarea") == ["weather", "note"]
    assert parse_label_config("").controls == [] and parse_label_config("<View>").controls == []


def test_results_group_by_region_id():
    result = [
        {
            "id": "a",
            "type": "rectangle",
            "from_name": "box",
            "to_name": "img",
            "original_width": 200,
            "original_height": 100,
            "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 45},
        },
        {
            "id": "a",
            "type": "labels",
            "from_name": "outline_labels",
            "to_name": "img",
            "value": {"labels": ["Cat"]},
        },
        {
            "id": "a",
            "type": "textarea",
            "from_name": "note",
            "to_name": "img",
            "value": {"text": ["one", "two"]},
        },
        {
            "id": "w",
            "type": "choices",
            "from_name": "weather",
            "to_name": "img",
            "value": {"choices": ["Sunny"]},
        },
        {"id": "rel", "type": "relation", "from_id": "a", "to_id": "b"},
    ]
    content = parse_results(result)
    (region,) = content.regions
    assert region.kind == "box" and region.labels == ["Cat"] and region.rotation == 45
    assert region.box_pixels() == {"x": 20.0, "y": 20.0, "width": 60.0, "height": 40.0}
    assert region.properties == {"LS_text_note": "one\ntwo"}
    assert content.properties == {"LS_choices_weather": '["Sunny"]'}
    assert content.ignored == [result[-1]]


def test_size_falls_back_when_results_lack_it():
    (region,) = parse_results(
        [{"id": "k", "type": "keypointlabels", "value": {"x": 50, "y": 25}}]
    ).regions
    assert region.point_pixels((64, 48)) == (32.0, 12.0)


def test_predictions_in_percent_round_trip_exactly():
    cfg = parse_label_config(CONFIG)
    r = box_result(
        {
            "_uniqueid": "4.0.1",
            "_label": "Dog",
            "_coordinates": {"x": 7, "y": 9, "width": 13, "height": 3},
        },
        64,
        48,
        cfg.box_control(),
        readonly=True,
    )
    assert r["type"] == "rectanglelabels" and r["value"]["rectanglelabels"] == ["Dog"]
    (back,) = parse_results([r]).regions
    assert {k: round(v, 9) for k, v in back.box_pixels().items()} == {
        "x": 7,
        "y": 9,
        "width": 13,
        "height": 3,
    }
    rings = polygon_results(
        {"_uniqueid": "5.0.1", "_label": "Road", "_vertices": [[[0, 0], [32, 0], [16, 24]]]},
        64,
        48,
        cfg.polygon_control(),
        readonly=False,
    )
    assert rings[0]["type"] == "polygon" and rings[0]["value"]["points"] == [
        [0, 0],
        [50, 0],
        [25, 50],
    ]


def test_save_query_updates_in_place_and_deletes_what_is_gone():
    result = [
        {
            "id": "b1",
            "type": "rectanglelabels",
            "original_width": 100,
            "original_height": 100,
            "value": {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": ["Cat"]},
        },
        {
            "id": "k1",
            "type": "keypointlabels",
            "original_width": 100,
            "original_height": 100,
            "value": {"x": 5, "y": 6, "keypointlabels": ["Nose"]},
        },
    ]
    ann = Q.AnnotationRecord(id=9, project_id=2, task_id=3, result=result)
    q = Q.save_annotation_query(ann, parse_results(result), "2.0.5", None, ["LS_choices_weather"])
    names = [next(iter(c)) for c in q]
    assert names[:11] == [
        "FindImage",
        "AddEntity",
        "UpdateEntity",
        "FindBoundingBox",
        "DeleteBoundingBox",
        "FindPolygon",
        "DeletePolygon",
        "FindEntity",
        "DeleteEntity",
        "FindPolygon",
        "DeletePolygon",
    ]
    assert q[3]["FindBoundingBox"]["constraints"] == {"LS_id": ["not in", ["b1"]]}
    assert q[7]["FindEntity"]["constraints"] == {"LS_id": ["not in", ["k1"]]}
    assert q[2]["UpdateEntity"]["remove_props"] == ["LS_choices_weather"]
    add_box = q[11]["AddBoundingBox"]
    assert add_box["if_not_found"] == {"LS_id": ["==", "b1"], "LS_annotation": ["==", "9"]}
    assert add_box["rectangle"] == {"x": 1, "y": 2, "width": 3, "height": 4}
    assert json.loads(q[2]["UpdateEntity"]["properties"]["LS_data"])["result"] == result
    refs = [c[n].get("_ref") for c, n in zip(q, names, strict=True) if c[n].get("_ref")]
    assert len(refs) == len(set(refs))


def test_save_query_without_image_keeps_the_annotation_only():
    result = [
        {"id": "b1", "type": "rectanglelabels", "value": {"x": 1, "y": 2, "width": 3, "height": 4}}
    ]
    q = Q.save_annotation_query(
        Q.AnnotationRecord(id=1, project_id=1, task_id=1, result=result),
        parse_results(result),
        None,
    )
    assert not any("AddBoundingBox" in c for c in q)


def test_polygons_are_kept_while_their_shape_is():
    def poly(points):
        return [
            {
                "id": "p1",
                "type": "polygonlabels",
                "original_width": 100,
                "original_height": 100,
                "value": {"points": points, "polygonlabels": ["Road"]},
            }
        ]

    def shape_query(points):
        q = Q.save_annotation_query(
            Q.AnnotationRecord(id=4, project_id=2, task_id=3, result=poly(points)),
            parse_results(poly(points)),
            "2.0.5",
        )
        add = next(c["AddPolygon"] for c in q if "AddPolygon" in c)
        stale = [c["FindPolygon"]["constraints"] for c in q if "FindPolygon" in c]
        return add, stale

    add, stale = shape_query([[1, 1], [5, 1], [3, 4]])
    assert add["if_not_found"] == {
        "LS_shape": ["==", add["properties"]["LS_shape"]],
        "LS_annotation": ["==", "4"],
    }
    assert {
        "LS_shape": ["not in", [add["properties"]["LS_shape"]]]
    } in stale  # others of the annotation go
    assert {"LS_shape": ["==", None]} in stale  # and polygons saved before shapes were recorded
    same, _ = shape_query([[1, 1], [5, 1], [3, 4]])
    moved, _ = shape_query([[2, 1], [5, 1], [3, 4]])
    assert (
        same["properties"]["LS_shape"]
        == add["properties"]["LS_shape"]
        != moved["properties"]["LS_shape"]
    )
