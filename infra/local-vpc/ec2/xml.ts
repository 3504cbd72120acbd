/**
 * Minimal XML writer for EC2 Query-API replies. A reply body is described as plain data:
 * objects become child elements in key order, arrays become `<item>` lists, Date becomes ISO-8601,
 * booleans `true`/`false`, undefined is left out.
 *
 * Exports: XmlValue, ec2Response(action, body, requestId), ec2ErrorResponse(code, message, requestId).
 */
export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export type XmlValue =
  | string
  | number
  | boolean
  | Date
  | undefined
  | null
  | XmlValue[]
  | { [k: string]: XmlValue };

export function escapeXml(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', "'": 'apos', '"': 'quot' }[c]};`,
  );
}

function render(name: string, v: XmlValue, out: string[]): void {
  if (v === undefined || v === null) return;
  if (Array.isArray(v)) {
    out.push(`<${name}>`);
    for (const item of v) render('item', item, out);
    out.push(`</${name}>`);
  } else if (v instanceof Date) {
    out.push(`<${name}>${v.toISOString()}</${name}>`);
  } else if (typeof v === 'object') {
    out.push(`<${name}>`);
    for (const [k, child] of Object.entries(v)) render(k, child, out);
    out.push(`</${name}>`);
  } else {
    out.push(`<${name}>${escapeXml(String(v))}</${name}>`);
  }
}

export function ec2Response(action: string, body: Record<string, XmlValue>, requestId: string): string {
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<${action}Response xmlns="${EC2_XMLNS}">`,
  ];
  out.push(`<requestId>${requestId}</requestId>`);
  for (const [k, v] of Object.entries(body)) render(k, v, out);
  out.push(`</${action}Response>`);
  return out.join('\n');
}

export function ec2ErrorResponse(code: string, message: string, requestId: string): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
  ].join('\n');
}
