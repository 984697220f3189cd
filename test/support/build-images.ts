/**
 * Builds the images both integration lanes use, once, before they start side by side
 * (testenv/integration.sh), so the two never build the same tag at once. Each test file still
 * calls buildImages() itself and finds them cached, so a file also runs on its own.
 */
import { buildImages } from "./stack.js";

await buildImages();
