/* Image-write benchmark: the parent reads every page of libbigdata.so's
 * .data (so it is in the page cache), forks, and the child writes one byte
 * per page. Each write is a COW fault on a private file mapping (a fill from
 * the page cache, since fork does not copy the PTEs of file pages). Prints
 * the child's mean time per write as ns_per_fault=<ns>. */
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char big_data[];
extern const unsigned long big_pages;

static unsigned long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(void) {
    volatile char sink = 0;
    for (unsigned long i = 0; i < big_pages; i++)
        sink += big_data[i * 4096];
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        unsigned long long start = now_ns();
        for (unsigned long i = 0; i < big_pages; i++)
            ((volatile char *)big_data)[i * 4096] = 2;
        unsigned long long ns = now_ns() - start;
        if (write(fds[1], &ns, sizeof ns) != sizeof ns) _exit(1);
        _exit(0);
    }
    unsigned long long ns = 0;
    if (read(fds[0], &ns, sizeof ns) != sizeof ns) { perror("read"); return 1; }
    int status;
    waitpid(pid, &status, 0);
    printf("ns_per_fault=%.1f\n", (double)ns / (double)big_pages);
    return 0;
}
