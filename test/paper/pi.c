#include <stdio.h>
#include <string.h>
#include <math.h>

#define PI 3.141592653589793238462643383279

int main ()
{
    float pi = 0;
    int limit = 1000;
    float temp;
    unsigned int i;
    for(i=0; i<limit; i++) {
        if (i%2==0) temp=4.0f/(2*i+1);
        if (i%2==1) temp=-4.0f/(2*i+1);
        pi=pi+temp;
        printf("%d: diff: %.15f, est pi: %.15f\n",i,PI-pi,pi);
    }
}
