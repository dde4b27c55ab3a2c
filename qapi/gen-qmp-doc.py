#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the command reference of docs/qmp.md from the schema files.

    gen-qmp-doc.py DOC.md SCHEMA.json...           rewrite the generated part
    gen-qmp-doc.py --check DOC.md SCHEMA.json...   fail if it is out of date

Only the text between the BEGIN/END markers is generated; the rest of the
document is written by hand.
"""
import json
import os
import sys

BEGIN = '<!-- BEGIN GENERATED REFERENCE: python3 qapi/gen-qmp-doc.py docs/qmp.md qapi/*.json -->'
END = '<!-- END GENERATED REFERENCE -->'


def type_text(t):
    if isinstance(t, list):
        return '[' + type_text(t[0]) + ']'
    return t


def members(obj):
    """(name, optional, type, doc) for each member, in schema order."""
    out = []
    for key, value in (obj or {}).items():
        optional = key.startswith('*')
        name = key[1:] if optional else key
        doc = None
        if isinstance(value, dict):
            doc = value.get('doc')
            value = value['type']
        out.append((name, optional, type_text(value), doc))
    return out


def member_lines(obj):
    lines = []
    for name, optional, t, doc in members(obj):
        line = f'- `{name}`: `{t}`' + (' (optional)' if optional else '')
        if doc:
            line += f' - {doc}'
        lines.append(line)
    return lines


def render(files):
    out = [BEGIN, '']
    areas = []
    for path in files:
        with open(path) as f:
            areas.append((os.path.basename(path)[:-len('.json')], json.load(f)))
    areas.sort()
    for area, schema in areas:
        out.append(f'### Area `{area}` (qapi/{area}.json)')
        out.append('')
        if schema.get('doc'):
            out += [schema['doc'], '']
        for cmd in schema.get('commands', []):
            out.append(f'#### `{cmd["name"]}`')
            out.append('')
            out.append(cmd.get('doc', ''))
            out.append('')
            args = member_lines(cmd.get('arguments'))
            out += ['Arguments:', ''] + args + [''] if args else ['Arguments: none.', '']
            if 'returns' in cmd:
                out += [f'Returns: `{type_text(cmd["returns"])}`.', '']
            if cmd.get('hmp'):
                out += [f'HMP: `{cmd["hmp"]}`.', '']
            if cmd.get('example'):
                out += ['```'] + cmd['example'] + ['```', '']
        for ev in schema.get('events', []):
            out.append(f'#### Event `{ev["name"]}`')
            out.append('')
            out.append(ev.get('doc', ''))
            out.append('')
            data = member_lines(ev.get('data'))
            out += ['Data:', ''] + data + [''] if data else ['Data: none.', '']
        for t in schema.get('types', []):
            out.append(f'#### Type `{t["name"]}`')
            out.append('')
            if t.get('doc'):
                out += [t['doc'], '']
            if 'enum' in t:
                out += ['One of: ' + ', '.join(f'`{v}`' for v in t['enum']) + '.', '']
            else:
                out += member_lines(t.get('members')) + ['']
    out.append(END)
    return '\n'.join(out)


def main():
    args = sys.argv[1:]
    check = args and args[0] == '--check'
    if check:
        args = args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    doc, files = args[0], args[1:]
    with open(doc) as f:
        text = f.read()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        sys.exit(f'gen-qmp-doc: {doc} lacks the generated-reference markers')
    new = text[:start] + render(files) + text[end + len(END):]
    if check:
        if new != text:
            print(f'gen-qmp-doc: {doc} is out of date with the schema; run '
                  f'python3 qapi/gen-qmp-doc.py docs/qmp.md qapi/*.json')
            sys.exit(1)
        print(f'gen-qmp-doc: {doc} matches the schema')
        return
    with open(doc, 'w') as f:
        f.write(new)


if __name__ == '__main__':
    main()
