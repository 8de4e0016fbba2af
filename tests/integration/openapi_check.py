"""Checks of HTTP answers against streamd's own OpenAPI document (stdlib only): template
matching, $ref resolution, and a small JSON-schema validator (type, required, properties,
items, enum, length). Used by test_openapi.py and, for every API call, by the harness."""


def template_matches(template, path):
    if template.endswith("{taskId}"):
        prefix = template[: -len("{taskId}")]
        return path.startswith(prefix) and len(path) > len(prefix)
    t, p = template.split("/"), path.split("/")
    return len(t) == len(p) and all(a == b or (a.startswith("{") and a.endswith("}"))
                                    for a, b in zip(t, p))


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        cur = doc
        for part in ref[2:].split("/"):
            assert part in cur, "unresolved $ref " + ref
            cur = cur[part]
        node = cur
    return node


def validate(doc, schema, value, where="body"):
    """Validates value against schema (type, required, properties, items, enum, length, $ref,
    allOf, nullable).
    Objects may only carry documented properties. Returns a list of problems."""
    schema = resolve(doc, schema)
    errors = []
    if value is None and schema.get("nullable"):
        return errors
    for part in schema.get("allOf", []):
        errors.extend(validate(doc, part, value, where))
    typ = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if typ is not None and not checks[typ](value):
        return ["%s: expected %s, got %r" % (where, typ, value)]
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r not in %r" % (where, value, schema["enum"]))
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1 << 30):
            errors.append("%s: length %d out of range" % (where, len(value)))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append("%s: missing required %r" % (where, key))
        for key, v in value.items():
            if key in props:
                errors.extend(validate(doc, props[key], v, where + "." + key))
            elif props:
                errors.append("%s: undocumented field %r" % (where, key))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors.extend(validate(doc, schema["items"], v, "%s[%d]" % (where, i)))
    return errors


def response_schema(doc, method, template, status):
    op = doc["paths"][template][method]
    responses = op["responses"]
    resp = resolve(doc, responses.get(str(status)) or responses["default"])
    content = resp.get("content") or {}
    return content.get("application/json", {}).get("schema")


def check(doc, method, template, status, body):
    """Asserts body is what the document says (method, template) answers with status."""
    op = doc["paths"][template][method]
    assert str(status) in op["responses"] or "default" in op["responses"], \
        "%s %s answered undocumented %d" % (method, template, status)
    schema = response_schema(doc, method, template, status)
    if schema is None:
        assert body is None, (method, template, status, body)
        return
    errors = validate(doc, schema, body)
    assert not errors, "%s %s %d: %s\n%r" % (method, template, status, errors, body)
