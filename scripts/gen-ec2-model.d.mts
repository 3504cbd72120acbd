// Types for scripts/gen-ec2-model.mjs (imported by the emulator's tests).
export declare const SERVED_ACTIONS: readonly string[];
