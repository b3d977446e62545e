// PNG shims over libpng's full API. libpng reports errors by longjmp, which
// must never cross into Swift frames, so every call that can fail runs here
// under setjmp and turns the error into a message.
#include "CShims.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char *err; size_t errlen; } err_ctx;
typedef struct { const uint8_t *data; size_t len, pos; } read_ctx;
typedef struct { uint8_t *buf; size_t len, cap; int oom; } write_ctx;

static void on_error(png_structp png, png_const_charp msg) {
  err_ctx *e = (err_ctx *)png_get_error_ptr(png);
  if (e && e->err && e->errlen) snprintf(e->err, e->errlen, "%s", msg);
  png_longjmp(png, 1);
}
static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void read_mem(png_structp png, png_bytep out, png_size_t n) {
  read_ctx *r = (read_ctx *)png_get_io_ptr(png);
  if (r->len - r->pos < n) png_error(png, "truncated PNG data");
  memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

int ecenet_png_decode(const uint8_t *data, size_t len, int mode, uint8_t **out,
                      int *width, int *height, int *channels, char *err, size_t errlen) {
  err_ctx e = {err, errlen};
  read_ctx r = {data, len, 0};
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  *out = NULL;
  if (len < 8 || png_sig_cmp(data, 0, 8) != 0) {
    snprintf(err, errlen, "not a PNG file (bad signature)");
    return -1;
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &e, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    snprintf(err, errlen, "out of memory creating PNG reader");
    png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    free(pixels); free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return -1;
  }
  png_set_read_fn(png, &r, read_mem);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
  int ch;
  if (mode == 0) {
    // Labels: the stored values themselves. Palette indices stay indices.
    if (type != PNG_COLOR_TYPE_GRAY && type != PNG_COLOR_TYPE_PALETTE)
      png_error(png, "label PNG must be 8-bit grey or palette (found a colour image)");
    if (depth == 16) png_error(png, "label PNG must be 8-bit (found 16-bit)");
    if (depth < 8) png_set_packing(png);
    ch = 1;
  } else {
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_strip_alpha(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png), png_set_strip_alpha(png);
    ch = 3;
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  if (rowbytes != (size_t)w * ch) png_error(png, "unexpected PNG row size after conversion");
  pixels = (uint8_t *)malloc((size_t)w * h * ch);
  rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
  if (!pixels || !rows) png_error(png, "out of memory decoding PNG");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * rowbytes;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  free(rows);
  png_destroy_read_struct(&png, &info, NULL);
  *out = pixels; *width = (int)w; *height = (int)h; *channels = ch;
  return 0;
}

static void write_mem(png_structp png, png_bytep in, png_size_t n) {
  write_ctx *wc = (write_ctx *)png_get_io_ptr(png);
  if (wc->len + n > wc->cap) {
    size_t cap = wc->cap ? wc->cap * 2 : 65536;
    while (cap < wc->len + n) cap *= 2;
    uint8_t *nb = (uint8_t *)realloc(wc->buf, cap);
    if (!nb) png_error(png, "out of memory encoding PNG");
    wc->buf = nb; wc->cap = cap;
  }
  memcpy(wc->buf + wc->len, in, n);
  wc->len += n;
}
static void flush_mem(png_structp png) { (void)png; }

int ecenet_png_encode(const uint8_t *pixels, int width, int height, int channels,
                      const uint8_t *palette_rgb, int ncolors, uint8_t **out,
                      size_t *outlen, char *err, size_t errlen) {
  err_ctx e = {err, errlen};
  write_ctx wc = {NULL, 0, 0, 0};
  png_bytep *volatile rows = NULL;
  *out = NULL; *outlen = 0;
  if (channels != 1 && channels != 3) { snprintf(err, errlen, "PNG encode: channels must be 1 or 3"); return -1; }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) { snprintf(err, errlen, "out of memory creating PNG writer"); return -1; }
  if (setjmp(png_jmpbuf(png))) {
    free(rows); free(wc.buf);
    png_destroy_write_struct(&png, &info);
    return -1;
  }
  png_set_write_fn(png, &wc, write_mem, flush_mem);
  int type = channels == 3 ? PNG_COLOR_TYPE_RGB
             : (palette_rgb && ncolors > 0 ? PNG_COLOR_TYPE_PALETTE : PNG_COLOR_TYPE_GRAY);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (type == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[256];
    int n = ncolors > 256 ? 256 : ncolors;
    for (int i = 0; i < n; i++) {
      pal[i].red = palette_rgb[3 * i]; pal[i].green = palette_rgb[3 * i + 1]; pal[i].blue = palette_rgb[3 * i + 2];
    }
    png_set_PLTE(png, info, pal, n);
  }
  png_write_info(png, info);
  rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
  if (!rows) png_error(png, "out of memory encoding PNG");
  for (int y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * width * channels);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  free(rows);
  png_destroy_write_struct(&png, &info);
  *out = wc.buf; *outlen = wc.len;
  return 0;
}
