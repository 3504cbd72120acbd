/**
 * ANNOTATE_POD_IP: the pod gets `vpc.amazonaws.com/pod-ips: <address>` as soon as ADD has answered, so
 * a policy engine (Calico) need not wait for the kubelet to report Pod.status.podIP; on DEL the value
 * becomes "" when it still names the released address (a newer sandbox's address is left alone), as the
 * reference does. Annotating never delays or fails a CNI call: it runs after the answer, is retried a
 * few times, and a failure is logged. RBAC: get and patch on pods (the chart adds them with the setting).
 */
import type { AddRequest, AddResult, DelRequest, DelResult } from '../../lib/protocol/ipamd.js';
import type { Datastore } from '../datastore/datastore.js';
import type { Logger } from '../log.js';
import type { IpamHandler } from '../server/handler.js';
import type { K8sAccess } from './access.js';

export const POD_IPS_ANNOTATION = 'vpc.amazonaws.com/pod-ips';

export interface PodRef {
  namespace: string;
  name: string;
}

export class PodIpAnnotator {
  /** The last change queued per pod: changes to one pod apply in order. */
  private readonly tails = new Map<string, Promise<void>>();

  constructor(
    private readonly access: Pick<K8sAccess, 'patchPodAnnotations' | 'readPod'>,
    private readonly log: Logger,
    private readonly retryDelaysMs: number[] = [200, 1000, 3000],
  ) {}

  added(pod: PodRef, address: string): Promise<void> {
    return this.enqueue(pod, () => this.patch(pod, address));
  }

  released(pod: PodRef, address: string): Promise<void> {
    return this.enqueue(pod, async () => {
      const current = await this.access.readPod!(pod.namespace, pod.name);
      if (current === null) return; // the pod is gone: nothing to say
      const value = annotationsOf(current)[POD_IPS_ANNOTATION];
      if (value !== undefined && value !== address) {
        this.log.debug(
          { pod: `${pod.namespace}/${pod.name}`, value, address },
          'pod-ips names another address; left alone',
        );
        return;
      }
      if (value !== undefined) await this.patch(pod, '');
    });
  }

  /** Resolves when every queued change has been tried (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }

  private async patch(pod: PodRef, value: string): Promise<void> {
    await this.access.patchPodAnnotations!(pod.namespace, pod.name, { [POD_IPS_ANNOTATION]: value });
  }

  private enqueue(pod: PodRef, change: () => Promise<void>): Promise<void> {
    const key = `${pod.namespace}/${pod.name}`;
    const attempt = async () => {
      for (let i = 0; ; i++) {
        try {
          await change();
          return;
        } catch (err) {
          const delay = this.retryDelaysMs[i];
          if (delay === undefined) {
            this.log.warn({ pod: key, err: (err as Error).message }, `could not set ${POD_IPS_ANNOTATION}`);
            return;
          }
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    };
    const tail = (this.tails.get(key) ?? Promise.resolve()).then(attempt);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return tail;
  }
}

function annotationsOf(pod: unknown): Record<string, string> {
  const meta = (pod as { metadata?: { annotations?: unknown } } | null)?.metadata;
  const a = meta?.annotations;
  return a && typeof a === 'object' ? (a as Record<string, string>) : {};
}

/**
 * The handler with annotations: ADD's answer first, then the annotation; DEL looks the pod up before
 * the address is released (DEL requests name no pod).
 */
export function annotatingHandler(
  inner: IpamHandler,
  annotator: PodIpAnnotator,
  podOf: (req: DelRequest) => PodRef | null,
): IpamHandler {
  return {
    add: async (req: AddRequest): Promise<AddResult> => {
      const out = await inner.add(req);
      if (req.podNamespace && req.podName) {
        void annotator.added({ namespace: req.podNamespace, name: req.podName }, out.address);
      }
      return out;
    },
    del: async (req: DelRequest): Promise<DelResult> => {
      const pod = podOf(req);
      const out = await inner.del(req);
      if (pod && out.address) void annotator.released(pod, out.address);
      return out;
    },
    gc: (req) => inner.gc(req),
    health: () => inner.health(),
  };
}

/** The pod (namespace/name) the datastore records for a DEL's attachment, before it is released. */
export function podOfAttachment(ds: Pick<Datastore, 'assignments'>, req: DelRequest): PodRef | null {
  const held = ds
    .assignments()
    .find(
      (x) =>
        x.assignment.network === req.network &&
        x.assignment.containerId === req.containerId &&
        x.assignment.ifName === req.ifName,
    )?.assignment;
  return held?.podNamespace && held.podName ? { namespace: held.podNamespace, name: held.podName } : null;
}
