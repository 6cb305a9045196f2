"""Write the gateway's .proto files from the installed jina and docarray packages.

jina's wheel ships only the compiled ``jina_pb2.py`` (docarray v2 flavour), not its .proto;
this renders the compiled descriptors back to .proto text, so protos/ always matches the
jina and docarray versions pinned in requirements.lock (tests/test_grpc_client.py checks it).

    python protos/export_protos.py            # rewrite protos/jina.proto and protos/docarray.proto
"""

import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

HERE = Path(__file__).resolve().parent

_SCALARS = {
    getattr(descriptor_pb2.FieldDescriptorProto, f"TYPE_{t.upper()}"): t
    for t in ("double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool", "string",
              "bytes", "uint32", "sfixed32", "sfixed64", "sint32", "sint64")
}
_HEADER = "// Rendered by protos/export_protos.py from the installed {what}: do not edit.\n"


def file_descriptor(module) -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    return fdp


def _type(field: descriptor_pb2.FieldDescriptorProto, package: str) -> str:
    if field.type in _SCALARS:
        return _SCALARS[field.type]
    name = field.type_name.lstrip(".")
    return name[len(package) + 1:] if name.startswith(package + ".") else name


def _message(msg: descriptor_pb2.DescriptorProto, package: str, indent: str) -> list[str]:
    out = [f"{indent}message {msg.name} {{"]
    inner = indent + "  "
    maps = {n.name: n for n in msg.nested_type if n.options.map_entry}
    for enum in msg.enum_type:
        out += _enum(enum, inner)
    for nested in msg.nested_type:
        if not nested.options.map_entry:
            out += _message(nested, package, inner)
    real_oneofs = {i for i, f in enumerate(msg.field) if f.HasField("oneof_index") and not f.proto3_optional}
    written_oneofs: set[int] = set()
    for i, f in enumerate(msg.field):
        if i in real_oneofs:
            idx = f.oneof_index
            if idx in written_oneofs:
                continue
            written_oneofs.add(idx)
            out.append(f"{inner}oneof {msg.oneof_decl[idx].name} {{")
            for g in msg.field:
                if g.HasField("oneof_index") and g.oneof_index == idx and not g.proto3_optional:
                    out.append(f"{inner}  {_type(g, package)} {g.name} = {g.number};")
            out.append(f"{inner}}}")
            continue
        entry = maps.get(f.type_name.rsplit(".", 1)[-1]) if f.label == f.LABEL_REPEATED else None
        if entry is not None:
            key, value = entry.field
            out.append(f"{inner}map<{_type(key, package)}, {_type(value, package)}> {f.name} = {f.number};")
            continue
        label = "repeated " if f.label == f.LABEL_REPEATED else "optional " if f.proto3_optional else ""
        out.append(f"{inner}{label}{_type(f, package)} {f.name} = {f.number};")
    out.append(f"{indent}}}")
    return out


def _enum(enum: descriptor_pb2.EnumDescriptorProto, indent: str) -> list[str]:
    return [f"{indent}enum {enum.name} {{", *(f"{indent}  {v.name} = {v.number};" for v in enum.value), f"{indent}}}"]


def render(fdp: descriptor_pb2.FileDescriptorProto, what: str) -> str:
    lines = [_HEADER.format(what=what).rstrip("\n"), f'syntax = "{fdp.syntax or "proto2"}";', ""]
    lines += [f'import "{dep}";' for dep in fdp.dependency]
    lines += ["", f"package {fdp.package};", ""]
    for enum in fdp.enum_type:
        lines += _enum(enum, "") + [""]
    for msg in fdp.message_type:
        lines += _message(msg, fdp.package, "") + [""]
    for svc in fdp.service:
        lines.append(f"service {svc.name} {{")
        for m in svc.method:
            req = ("stream " if m.client_streaming else "") + _type_name(m.input_type, fdp.package)
            resp = ("stream " if m.server_streaming else "") + _type_name(m.output_type, fdp.package)
            lines.append(f"  rpc {m.name} ({req}) returns ({resp});")
        lines += ["}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _type_name(name: str, package: str) -> str:
    name = name.lstrip(".")
    return name[len(package) + 1:] if name.startswith(package + ".") else name


def sources() -> dict[str, str]:
    """File name → .proto text, from the installed packages."""
    from docarray.proto.pb import docarray_pb2
    from jina.proto.docarray_v2.pb import jina_pb2

    import docarray
    import jina

    return {
        "docarray.proto": render(file_descriptor(docarray_pb2), f"docarray {docarray.__version__} (docarray/proto/pb/docarray_pb2.py)"),
        "jina.proto": render(file_descriptor(jina_pb2), f"jina {jina.__version__} (jina/proto/docarray_v2/pb/jina_pb2.py)"),
    }


def main() -> int:
    for name, text in sources().items():
        (HERE / name).write_text(text)
        print(HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
