"""Add/Find/Update/Delete for the object families: entities, images, blobs, boxes, polygons."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lensdb import media
from lensdb.engine import descriptors, regions
from lensdb.engine.constraints import parse_constraints
from lensdb.engine.context import BlobInput, Context, Params, RefSet, takes_blob
from lensdb.engine.find import (
    FIND_COMMON,
    Row,
    Traversal,
    combine,
    parse_shape,
    run_find,
    stored_blobs,
    traverse,
    unique_probe,
)
from lensdb.engine.values import check_user_key, encode_properties
from lensdb.errors import QueryError, Status, answer
from lensdb.store.base import Compare, ObjectRow, Predicate, Selection

ADD_COMMON = frozenset({"_ref", "properties", "if_not_found", "connect"})
UPDATE_COMMON = frozenset({"ref", "constraints", "properties", "remove_props"})
DELETE_COMMON = frozenset({"ref", "constraints"})
REGION_LINKS = {"_BoundingBox": "_BoundingBoxToImage", "_Polygon": "_PolygonToImage"}


@dataclass(frozen=True)
class Family:
    name: str  # the command suffix: Entity, Image, Blob, BoundingBox, Polygon
    cls: str | None  # the system class; None for user entity classes
    add: frozenset[str]
    find: frozenset[str]
    update: frozenset[str]
    flags: tuple[str, ...] = ("uniqueids",)

    @property
    def is_region(self) -> bool:
        return self.cls in REGION_LINKS

    @cached_property
    def find_params(self) -> frozenset[str]:
        return FIND_COMMON | self.find

    @cached_property
    def add_params(self) -> frozenset[str]:
        return ADD_COMMON | self.add

    @cached_property
    def add_command(self) -> str:
        return f"Add{self.name}"


_REGION_FIND = frozenset(
    {"image_ref", "labels", "areas", "with_label", "in_rectangle", "as_format", "operations"}
)
FAMILIES = {
    f.name: f
    for f in (
        Family(
            "Entity",
            None,
            frozenset({"class"}),
            frozenset({"with_class"}),
            frozenset({"with_class"}),
        ),
        Family(
            "Image",
            "_Image",
            frozenset({"format", "operations", "url"}),
            frozenset({"as_format", "operations"}),
            frozenset(),
        ),
        Family("Blob", "_Blob", frozenset({"url"}), frozenset(), frozenset()),
        Family(
            "BoundingBox",
            "_BoundingBox",
            frozenset({"image_ref", "rectangle", "label"}),
            _REGION_FIND | {"coordinates"},
            frozenset({"rectangle", "label"}),
            ("uniqueids", "coordinates", "labels", "areas"),
        ),
        Family(
            "Polygon",
            "_Polygon",
            frozenset({"image_ref", "polygons", "label"}),
            _REGION_FIND | {"vertices", "bounds", "hulls", "decompositions"},
            frozenset({"polygons", "label"}),
            ("uniqueids", "labels", "areas", "vertices", "bounds"),
        ),
    )
}


# --- Add -----------------------------------------------------------------------------------------


def add(ctx: Context, fam: Family, body: object) -> dict[str, Any]:
    p = Params(body, fam.add_params)
    props = encode_properties(p.body.get("properties"))
    if "url" in p:
        raise QueryError("'url' is not supported: send the bytes as a blob")
    cls = fam.cls or _entity_class(p.str("class", required=True))
    blob = ctx.next_blob() if takes_blob(fam.add_command, body) else None  # see prepare_input

    if "if_not_found" in p:
        existing = _existing(ctx, fam, cls, p.get("if_not_found"))
        if existing:
            ctx.bind(p.body, RefSet("object", [r.id for r in existing], [r.cls for r in existing]))
            return answer(Status.EXISTS, info="Object Exists!")

    image: RefSet | None = None
    blob_key = ctx.keep_blob(blob) if blob is not None else None
    if fam.cls == "_Image":
        assert blob is not None
        props.setdefault("width", blob.info.width)
        props.setdefault("height", blob.info.height)
    if fam.is_region:
        image = _one_image(ctx, p)
        if fam.cls == "_BoundingBox":
            props.update(regions.box_props(regions.rectangle(p.body.get("rectangle"))))
        else:
            props.update(regions.polygon_props(regions.polygons(p.body.get("polygons"))))
        props["_label"] = regions.label(p.body.get("label", ""))

    oid = ctx.txn.add_object(cls, props, blob_key)
    if image is not None:
        ctx.txn.add_connection(REGION_LINKS[cls], oid, image.ids[0], {})
    if "connect" in p:
        _connect(ctx, oid, p.body["connect"])
    if "_ref" in p:
        ctx.bind(p.body, RefSet("object", [oid], [cls]))
    return answer()


def _entity_class(cls: str | None) -> str:
    assert cls is not None
    if not cls or cls.startswith("_"):
        raise QueryError(
            f"entity class {cls!r} is invalid: classes starting with '_' are the "
            "system's (use AddImage, AddBlob, ... for those)"
        )
    return cls


def _existing(ctx: Context, fam: Family, cls: str, spec: object) -> list[ObjectRow]:
    if isinstance(spec, int) and not isinstance(spec, bool):
        # if_not_found: <ref> — add only if that Find matched nothing.
        found = ctx.ref(spec, param="if_not_found")
        return [ObjectRow(i, c, {}) for i, c in zip(found.ids, found.classes, strict=True)]
    return ctx.txn.find_objects(_if_not_found_selection(cls, spec))


def _if_not_found_selection(cls: str, spec: object) -> Selection:
    return Selection(classes=[cls], where=parse_constraints(spec, what="if_not_found"), limit=1)


def planned_read(name: str, body: object) -> Selection | None:
    """The first `find_objects` an Add with `if_not_found` constraints, or a `unique` Find,
    will make, told from the command alone (before the query runs, so a network store can
    take a whole query's look-ups in one round trip); None when it cannot be told."""
    verb = next((v for v in ("Add", "Find") if name.startswith(v)), "")
    fam = FAMILIES.get(name[len(verb) :]) if verb else None
    if fam is None:
        return None
    try:
        if verb == "Add":
            p = Params(body, fam.add_params)
            spec = p.get("if_not_found")
            if not isinstance(spec, dict | list):  # absent, or a ref: nothing to read ahead
                return None
            return _if_not_found_selection(
                fam.cls or _entity_class(p.str("class", required=True)), spec
            )
        p = Params(body, fam.find_params)
        if not ("unique" in p and p.bool("unique")) or "is_connected_to" in p:
            return None
        if fam.is_region and "image_ref" in p:
            return None
        shape = parse_shape(p, fam.flags)
        where = combine(parse_constraints(p.get("constraints")), *_region_filters(fam, p))
        return unique_probe(Selection(classes=_classes(fam, p), where=where, sort=shape.sort))
    except (QueryError, TypeError, ValueError):  # the command will say what is wrong as it runs
        return None


def prepare_input(name: str, body: object, data: bytes) -> BlobInput:
    """Turn an input blob into what will be stored, before the transaction (and its lock).

    AddImage: apply its `operations`/`format`, read the size and check the data is whole.
    Problems are kept and raised when the command runs, so the error names the command like
    any other and the whole query adds nothing.
    """
    if name != "AddImage":
        return BlobInput(bytes(data))
    try:
        p = Params(body, FAMILIES["Image"].add_params)
        ops = media.validate_operations(p.get("operations")) if "operations" in p else None
        fmt = p.str("format")
        fmt = media.encode_format(fmt) if fmt else None
        blob = bytes(data)
        if ops or fmt:
            info = media.probe(blob)
            if ops or fmt != info.format:
                blob = media.render(
                    blob, ops, fmt
                )  # decodes all of it: a cut-short file fails here
                return BlobInput(blob, media.probe(blob))
        # Stored as given: check now that it is whole, not when it is first read.
        return BlobInput(blob, media.probe_complete(blob))
    except media.MediaError as e:
        return BlobInput(None, error=str(e))
    except QueryError as e:
        return BlobInput(None, error=e.info)


def _one_image(ctx: Context, p: Params) -> RefSet:
    if "image_ref" not in p:
        raise QueryError("'image_ref' is required: find or add the image first with a _ref")
    ref = ctx.ref(p.get("image_ref"), param="image_ref")
    if len(ref.ids) != 1 or ref.classes[0] != "_Image":
        raise QueryError(
            f"image_ref {p.get('image_ref')} must name exactly one image "
            f"(it names {len(ref.ids)} object(s))"
        )
    return ref


_CONNECT_KEYS = frozenset({"ref", "class", "direction", "properties"})


def _connect(ctx: Context, oid: int, spec: object) -> None:
    if not isinstance(spec, dict):
        raise QueryError("'connect' must be an object {ref, class, direction, properties}")
    if not _CONNECT_KEYS.issuperset(spec):
        unknown = sorted(set(spec) - _CONNECT_KEYS)
        raise QueryError(f"unknown key(s) in 'connect': {', '.join(map(str, unknown))}")
    ref = ctx.ref(spec.get("ref"), param="connect.ref")
    cls = spec.get("class")
    if not isinstance(cls, str) or not cls:
        raise QueryError("'connect.class' is required and must be a string")
    direction = spec.get("direction", "out")
    if direction not in ("in", "out"):
        raise QueryError('\'connect.direction\' must be "in" or "out"')
    props = encode_properties(spec.get("properties"), what="connect.properties")
    for other in ref.ids:
        src, dst = (oid, other) if direction == "out" else (other, oid)
        ctx.txn.add_connection(cls, src, dst, props)


# --- Find ----------------------------------------------------------------------------------------


def find(ctx: Context, fam: Family, body: object) -> dict[str, Any]:
    p = Params(body, fam.find_params)
    shape = parse_shape(p, fam.flags)
    classes = _classes(fam, p)
    where = combine(parse_constraints(p.get("constraints")), *_region_filters(fam, p))
    traversal = _traversal(ctx, fam, p)
    blob_of = _blob_reader(ctx, fam, p) if shape.blobs else None
    return run_find(
        ctx,
        p,
        shape,
        classes=classes,
        where=where,
        traversal=traversal,
        fetch=ctx.txn.find_objects,
        count=ctx.txn.count_objects,
        blob_of=blob_of,
        lean=True,
    )


def _classes(fam: Family, p: Params) -> list[str] | None:
    if fam.cls is not None:
        return [fam.cls]
    cls = p.str("with_class")
    return [cls] if cls is not None else None


def _region_filters(fam: Family, p: Params) -> list[Predicate]:
    out: list[Predicate] = []
    if fam.cls == "_DescriptorSet" and "with_name" in p:
        out.append(Compare("_name", "==", p.str("with_name")))
    if not fam.is_region:
        return out
    if "with_label" in p:
        out.append(Compare("_label", "==", regions.label(p.get("with_label"))))
    if "in_rectangle" in p:
        out.append(regions.in_rectangle(p.get("in_rectangle")))
    return out


def _traversal(ctx: Context, fam: Family, p: Params) -> Traversal | None:
    if fam.is_region and "image_ref" in p:
        if "is_connected_to" in p:
            raise QueryError("'image_ref' and 'is_connected_to' cannot be used together")
        assert fam.cls is not None
        spec = {
            "ref": p.get("image_ref"),
            "direction": "in",
            "connection_class": REGION_LINKS[fam.cls],
        }
        return traverse(ctx, spec)
    if "is_connected_to" in p:
        return traverse(ctx, p.get("is_connected_to"))
    return None


def _blob_reader(ctx: Context, fam: Family, p: Params):  # noqa: ANN202 - a closure
    try:
        ops = media.validate_operations(p.get("operations")) if "operations" in p else None
        fmt = media.encode_format(p.str("as_format")) if "as_format" in p else None
    except media.MediaError as e:
        raise QueryError(str(e)) from None
    if fam.cls in ("_Image", "_Blob"):

        def read(rows: list[Row]) -> list[bytes]:
            datas = stored_blobs(ctx, rows)  # type: ignore[arg-type]
            if fam.cls == "_Blob":
                return datas
            return [_render(d, ops, fmt) for d in datas]

        return read
    if fam.is_region:
        assert fam.cls is not None
        link = REGION_LINKS[fam.cls]

        def crop(rows: list[Row]) -> list[bytes]:
            # Two statements for the whole chunk, not two per region.
            image_of = dict(ctx.txn.neighbors([r.id for r in rows], "out", link, None))
            wanted = sorted(set(image_of.values()))
            images = (
                {i.id: i for i in ctx.txn.find_objects(Selection(ids=wanted))} if wanted else {}
            )
            for r in rows:
                image = images.get(image_of.get(r.id, -1))
                if image is None or image.blob is None:
                    raise QueryError(f"region {r.id} has no image")
            distinct = list(
                {images[image_of[r.id]].id: images[image_of[r.id]] for r in rows}.values()
            )
            stored = dict(zip([i.id for i in distinct], stored_blobs(ctx, distinct), strict=True))
            return [
                _render(stored[image_of[r.id]], ops, fmt, regions.crop_box(r.props)) for r in rows
            ]

        return crop
    return None


def _render(
    data: bytes, ops: list | None, fmt: str | None, crop: tuple[int, int, int, int] | None = None
) -> bytes:
    try:
        return media.render(data, ops, fmt, crop)
    except media.MediaError as e:
        raise QueryError(str(e)) from None


# --- Update and Delete ---------------------------------------------------------------------------


def _targets(ctx: Context, fam: Family, p: Params) -> list[int]:
    where = parse_constraints(p.get("constraints"))
    classes = _classes(fam, p)
    if "ref" in p:
        ref = ctx.ref(p.get("ref"))
        ids = [
            i for i, c in zip(ref.ids, ref.classes, strict=True) if classes is None or c in classes
        ]
        if where is None:
            return ids
        sel = Selection(classes=classes, where=where, ids=ids)
    else:
        sel = Selection(classes=classes, where=where)
    return [r.id for r in ctx.txn.find_objects(sel)]


def update(ctx: Context, fam: Family, body: object) -> dict[str, Any]:
    p = Params(body, UPDATE_COMMON | fam.update)
    props = encode_properties(p.get("properties"))
    remove = p.get("remove_props", [])
    if not isinstance(remove, list):
        raise QueryError("'remove_props' must be a list of property names")
    remove = [check_user_key(k) for k in remove]
    if fam.cls == "_BoundingBox" and "rectangle" in p:
        props.update(regions.box_props(regions.rectangle(p.get("rectangle"))))
    if fam.cls == "_Polygon" and "polygons" in p:
        props.update(regions.polygon_props(regions.polygons(p.get("polygons"))))
    if fam.is_region and "label" in p:
        props["_label"] = regions.label(p.get("label"))
    ids = _targets(ctx, fam, p)
    ctx.txn.update_objects(ids, props, remove)
    return answer(count=len(ids))


def delete(ctx: Context, fam: Family, body: object) -> dict[str, Any]:
    p = Params(body, DELETE_COMMON | ({"with_class"} if fam.cls is None else set()))
    ids = _targets(ctx, fam, p)
    # Descriptor sets and descriptors go as their own Delete commands take them (with their
    # vectors, and noted for the indexes); the rest here.
    doomed = descriptors.delete_own(ctx, ids, _classes(fam, p)) if fam.cls is None else list(ids)
    if fam.cls == "_Image" and ids:
        # Regions have no meaning without their image: they go with it.
        for link in REGION_LINKS.values():
            doomed += [n for _, n in ctx.txn.neighbors(ids, "in", link, None)]
    ctx.txn.delete_objects(doomed)
    return answer(count=len(ids))
