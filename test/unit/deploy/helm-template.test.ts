import { describe, expect, it } from 'vitest';
import { templateSet } from '../../../infra/helm/template.js';

function render(src: string, root: unknown, helpers = ''): string {
  const set = templateSet();
  if (helpers) set.add('_helpers.tpl', helpers);
  set.add('t.yaml', src);
  return set.render('t.yaml', root);
}

describe('the Go-template subset renderer', () => {
  it('substitutes fields and trims whitespace at - markers', () => {
    expect(render('a: {{ .Values.x }}\nb:   {{- .Values.y -}}   \n!', { Values: { x: 1, y: 'z' } })).toBe(
      'a: 1\nb:z!',
    );
  });

  it('runs pipelines with arguments, parentheses and piped values', () => {
    const root = { Values: { tag: '', app: '1.2', list: ['a', 'b'], m: { k: 'v' } } };
    expect(render('{{ .Values.tag | default .Values.app | quote }}', root)).toBe('"1.2"');
    expect(render('{{ (default "x" .Values.tag) }}', root)).toBe('x');
    expect(render('l:{{ toYaml .Values.list | nindent 2 }}', root)).toBe('l:\n  - a\n  - b');
    expect(render('{{ toYaml .Values.m | indent 4 }}', root)).toBe('    k: v');
    expect(render('{{ if eq (toString .Values.app) "1.2" }}yes{{ end }}', root)).toBe('yes');
  });

  it('branches with if / else if / else on Helm truthiness', () => {
    const t = '{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}';
    expect(render(t, { Values: { a: [1], b: true } })).toBe('A');
    expect(render(t, { Values: { a: [], b: true } })).toBe('B');
    expect(render(t, { Values: { a: {}, b: '' } })).toBe('C');
  });

  it('ranges over maps in key order and over lists, with variables and $', () => {
    const root = { Values: { m: { z: 1, a: 2 }, l: ['x', 'y'] }, Release: { Name: 'r' } };
    expect(
      render('{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }}{{ $.Release.Name }};{{ end }}', root),
    ).toBe('a=2r;z=1r;');
    expect(render('{{ range .Values.l }}[{{ . }}]{{ end }}', root)).toBe('[x][y]');
    expect(render('{{ range .Values.none }}x{{ else }}empty{{ end }}', { Values: { none: [] } })).toBe(
      'empty',
    );
  });

  it('with rebinds the dot and skips empty values', () => {
    expect(
      render('{{ with .Values.a }}{{ .b }}{{ end }}|{{ with .Values.c }}no{{ end }}', {
        Values: { a: { b: 'B' }, c: {} },
      }),
    ).toBe('B|');
  });

  it('includes helpers defined in other files', () => {
    const helpers = '{{- define "lbl" -}}\nname: {{ .Name }}\n{{- end }}';
    expect(
      render('m:\n  {{- include "lbl" .Release | nindent 2 }}', { Release: { Name: 'x' } }, helpers),
    ).toBe('m:\n  name: x');
  });

  it('fails loudly instead of mis-rendering', () => {
    expect(() => render('{{ .Values.missing }}', { Values: {} })).toThrow(/\.Values\.missing is not set/);
    expect(() => render('{{ .Values.a | sha256sum }}', { Values: { a: 1 } })).toThrow(
      /function "sha256sum" is not supported/,
    );
    expect(() => render('{{ if .Values.a }}x', { Values: { a: 1 } })).toThrow(/missing \{\{ end \}\}/);
    expect(() => render('{{ .Values.a ', { Values: {} })).toThrow(/unclosed action/);
    expect(() => render('{{ required "need a subnet" .Values.s }}', { Values: { s: '' } })).toThrow(
      /need a subnet/,
    );
    expect(() => render('{{ include "nope" . }}', {})).toThrow(/undefined template/);
  });

  it('ignores comments and braces inside strings', () => {
    expect(render('{{/* a }} comment */}}x{{ "}}" }}', {})).toBe('x}}');
  });
});
