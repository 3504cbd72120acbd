/** What the socket server needs from the daemon. Throw ProtocolError for errors the plugin should see. */
import type {
  AddRequest,
  AddResult,
  DelRequest,
  DelResult,
  GcRequest,
  GcResult,
  HealthResult,
} from '../../lib/protocol/ipamd.js';

export interface IpamHandler {
  add(req: AddRequest): Promise<AddResult>;
  del(req: DelRequest): Promise<DelResult>;
  gc(req: GcRequest): Promise<GcResult>;
  health(): Promise<HealthResult>;
}
