/* le.h — little-endian 64-bit integers in byte buffers (saved states, checkpoint records). */
#ifndef VS_LE_H
#define VS_LE_H

#include <stdint.h>

static inline void le_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t le_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
