/**
 * The EC2 API error: a code from EC2's documented error-code list, a message worded like EC2's,
 * and the HTTP status EC2 answers with (400 for client errors, 503 for throttling, 5xx for faults).
 *
 * Exports: Ec2Error, and small constructors for the errors several modules raise.
 */
export class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus = 400,
  ) {
    super(message);
    this.name = 'Ec2Error';
  }
}

export function invalidParameterValue(message: string): Ec2Error {
  return new Ec2Error('InvalidParameterValue', message);
}

export function missingParameter(name: string): Ec2Error {
  return new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`);
}

/**
 * EC2 spells its malformed-id codes inconsistently (InvalidNetworkInterfaceId.Malformed but
 * InvalidInstanceID.Malformed): the caller passes the documented code whole.
 */
export function malformedId(code: string, id: string, prefix: string): Ec2Error {
  return new Ec2Error(code, `Invalid id: "${id}" (expecting "${prefix}...")`);
}

/** `kind` is EC2's word for the resource in the code, e.g. `NetworkInterfaceID`, `InstanceID`. */
export function notFound(kind: string, noun: string, id: string): Ec2Error {
  return new Ec2Error(`Invalid${kind}.NotFound`, `The ${noun} ID '${id}' does not exist`);
}
