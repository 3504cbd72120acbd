/**
 * Every request checked against the EC2 service model before an action sees it, as EC2 does: a
 * parameter the action does not define is UnknownParameter, a required one that is absent is
 * MissingParameter, a value of the wrong type is InvalidParameterValue (all HTTP 400; "Error codes
 * for the Amazon EC2 API", common client errors). The table (api-model.generated.ts) is generated
 * from the SDK's own schemas by scripts/gen-ec2-model.mjs.
 *
 * Exports: Shape, ModelMember, ActionModel, Ec2ApiModel, validateParams, actionModel, filterNamesOf.
 */
import { EC2_API_MODEL } from './api-model.generated.js';
import { Ec2Error, invalidParameterValue, missingParameter } from './errors.js';

export type Shape =
  | { kind: 'string' | 'boolean' | 'number' | 'timestamp' | 'blob' | 'document' }
  | { kind: 'list'; item: Shape }
  | { kind: 'map'; key: Shape; value: Shape }
  | { kind: 'structure'; members: Record<string, ModelMember> };

export interface ModelMember {
  /** The SDK's member name (the query name is the key it is stored under). */
  member: string;
  shape: Shape;
  required?: boolean;
  idempotencyToken?: boolean;
}

export interface ActionModel {
  params: Record<string, ModelMember>;
  /** Filter names the action's documentation lists; tagKeyValue: `tag:<key>` is one of them. */
  filters?: { names: string[]; tagKeyValue: boolean };
}

export type Ec2ApiModel = Record<string, ActionModel>;

export function actionModel(action: string): ActionModel | undefined {
  return Object.hasOwn(EC2_API_MODEL, action) ? EC2_API_MODEL[action] : undefined;
}

/** The documented filter names of an action (undefined when it takes no filters). */
export function filterNamesOf(action: string): ActionModel['filters'] {
  return actionModel(action)?.filters;
}

function unknownParameter(name: string): Ec2Error {
  return new Ec2Error('UnknownParameter', `The parameter ${name} is not recognized`);
}

const NUMBER = /^-?\d+(\.\d+)?$/;

function checkScalar(kind: Shape['kind'], name: string, value: string): void {
  if (kind === 'number' && !NUMBER.test(value)) {
    throw invalidParameterValue(`Value (${value}) for parameter ${name} is invalid. Expected a number.`);
  }
  if (kind === 'boolean' && value !== 'true' && value !== 'false') {
    throw invalidParameterValue(
      `Value (${value}) for parameter ${name} is invalid. Expected 'true' or 'false'.`,
    );
  }
  if (kind === 'timestamp' && Number.isNaN(Date.parse(value))) {
    throw invalidParameterValue(`Value (${value}) for parameter ${name} is invalid. Expected a timestamp.`);
  }
}

/** A node of the request as sent: the value at this key, and the keys one level further down. */
interface Node {
  value?: string;
  children: Map<string, Node>;
}

function tree(params: Iterable<[string, string]>): Node {
  const root: Node = { children: new Map() };
  for (const [key, value] of params) {
    let node = root;
    for (const part of key.split('.')) {
      let next = node.children.get(part);
      if (!next) {
        next = { children: new Map() };
        node.children.set(part, next);
      }
      node = next;
    }
    node.value = value;
  }
  return root;
}

/** Checks one node against its shape; `path` is the query key so far, for messages. */
function check(node: Node, shape: Shape, path: string): void {
  switch (shape.kind) {
    case 'structure': {
      if (node.value !== undefined) throw invalidParameterValue(`The parameter ${path} must be a structure.`);
      checkMembers(node, shape.members, `${path}.`);
      return;
    }
    case 'list': {
      // EC2 flattens lists as Name.1 .. Name.N; an item index is a positive integer.
      if (node.value !== undefined && node.children.size === 0) throw unknownParameter(path);
      for (const [index, child] of node.children) {
        if (!/^[1-9]\d*$/.test(index)) throw unknownParameter(`${path}.${index}`);
        check(child, shape.item, `${path}.${index}`);
      }
      return;
    }
    case 'map': {
      for (const [index, entry] of node.children) {
        if (!/^[1-9]\d*$/.test(index)) throw unknownParameter(`${path}.${index}`);
        for (const [part, child] of entry.children) {
          if (part === 'Key') check(child, shape.key, `${path}.${index}.Key`);
          else if (part === 'Value') check(child, shape.value, `${path}.${index}.Value`);
          else throw unknownParameter(`${path}.${index}.${part}`);
        }
      }
      return;
    }
    default: {
      const [first] = node.children.keys();
      if (first !== undefined) throw unknownParameter(`${path}.${first}`);
      checkScalar(shape.kind, path, node.value ?? '');
    }
  }
}

function checkMembers(node: Node, members: Record<string, ModelMember>, prefix: string): void {
  for (const [name, child] of node.children) {
    const m = Object.hasOwn(members, name) ? members[name] : undefined;
    if (!m) throw unknownParameter(`${prefix}${name}`);
    check(child, m.shape, `${prefix}${name}`);
  }
  for (const [name, m] of Object.entries(members)) {
    if (!m.required) continue;
    const present = node.children.get(name);
    const empty = present === undefined || (present.value === '' && present.children.size === 0);
    if (empty) throw missingParameter(`${prefix}${name}`);
  }
}

/**
 * Refuses a request EC2 would refuse for its parameters alone. `params` are the form fields
 * without Action and Version.
 */
export function validateParams(action: string, params: Iterable<[string, string]>): void {
  const model = actionModel(action);
  if (!model) throw new Error(`no model for action ${action}`);
  checkMembers(tree(params), model.params, '');
}
