/** Adapts the emulator's Ec2State to the views the fabric reconciles against. */
import type { Ec2State, Eni } from '../ec2/state.js';
import type { AttachedEniView, FabricModel, InstanceView, ModelEvent } from './model.js';

const EVENTS: readonly ModelEvent[] = [
  'instance-launched',
  'eni-attached',
  'eni-detached',
  'addresses-changed',
  'instance-terminated',
  'metadata-options-changed',
];

function eniView(state: Ec2State, eni: Readonly<Eni>, primaryEniId: string): AttachedEniView | undefined {
  const subnet = state.getSubnet(eni.subnetId);
  const att = eni.attachment;
  if (!subnet || !att) return undefined;
  const primaryIp = eni.privateIps.find((p) => p.primary)?.address ?? eni.privateIps[0]?.address;
  if (!primaryIp) return undefined;
  return {
    eniId: eni.id,
    primary: eni.id === primaryEniId,
    mac: eni.mac,
    deviceIndex: att.deviceIndex,
    networkCardIndex: att.networkCardIndex,
    subnetCidr: subnet.cidrBlock,
    primaryIp,
    privateIps: eni.privateIps.map((p) => p.address),
    prefixes: [...eni.prefixes],
    attachedAt: att.attachTime.getTime(),
  };
}

export function fabricModelFromState(state: Ec2State): FabricModel {
  return {
    instance(instanceId: string): InstanceView | undefined {
      const inst = state.getInstance(instanceId);
      if (!inst) return undefined;
      const enis = state
        .visibleEnisOfInstance(instanceId)
        .map((e) => eniView(state, e, inst.primaryEniId))
        .filter((v): v is AttachedEniView => v !== undefined);
      return {
        instanceId,
        running: inst.state === 'running',
        enis,
        imdsHopLimit: inst.metadataOptions.httpPutResponseHopLimit,
      };
    },
    subscribe(fn) {
      const handlers = EVENTS.map((event) => {
        const h = (payload: { instanceId?: string } | undefined) => fn(event, payload?.instanceId);
        state.on(event, h);
        return [event, h] as const;
      });
      return () => {
        for (const [event, h] of handlers) state.off(event, h);
      };
    },
  };
}
