import { hostname } from "node:os";

/** The health endpoints name the container that answered (its hostname), in this header. */
export const INSTANCE_HEADER = "x-slipway-instance";
export const instanceName = (): string => hostname();
