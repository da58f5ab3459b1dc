/* A library with a large .data: 16 MiB of initialized, writable data
 * (4096 pages), for the image-write benchmark. */
#define BIG_PAGES 4096
char big_data[BIG_PAGES * 4096] = {1};
const unsigned long big_pages = BIG_PAGES;
